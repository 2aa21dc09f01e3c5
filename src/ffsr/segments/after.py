"""`--fps` with `--interpolate-after` (minterpolate, framerate, fps): the workers upscale, the
join interpolates, on the single-process run's exact timestamps. A .gif output's palette
runs in the join the same way (one palette for the whole clip, as in one process).

minterpolate's motion search starts from the previous frames' vectors, so it must see the
whole clip in one pass (segments.prepass); after the model that pass is the join, which
already sees every frame in order. What the join lacked was the timestamps: the
interpolators weigh frames by them (minterpolate's blend factor is quantised to 1/1024 of
the frame interval), and Matroska holds whole milliseconds (no integer of them is 1001/24000
s). So a worker writes each frame's pts *in input time-base ticks* where Matroska expects
milliseconds: `settb` and `setpts` move an integer count between time bases exactly (to
1/(1000·den) and back, every step an exact integer or an exact division). The join reads
the ticks back into the input's time base, subtracts what the single-process run subtracts
(the file's start, segments.temporal.start_shift) and runs the rest of the graph: the
interpolator and what follows it, character for character the single-process graph's tail
(checked, as the pre-pass split is).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from ffsr.errors import FfsrError
from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.model_card import ModelCard
from ffsr.upscale_job import UpscalePlan


@dataclass(frozen=True)
class AfterSplit:
    """The single-process graph, cut after the model."""

    worker: str
    """From the input to [out]: the per-frame part, ending in ticks (ticks_out)."""
    tail: str
    """The interpolator and what follows it, to [out], without the input label."""


def tail_in_join(plan: UpscalePlan) -> bool:
    """Whether the join runs the graph after the model: --interpolate-after's interpolator
    (minterpolate, framerate, fps), or a .gif's palette (palettegen looks at every frame
    before paletteuse draws the first), which see the whole clip there, in order. Not with
    RIFE, which the workers run with context frames (segments.temporal); a .gif with an
    interpolator before the model is refused (segments.job)."""
    req = plan.request
    if req.fps and req.interpolation == "rife":
        return False
    gif = bool(plan.graph_options and plan.graph_options.gif_palette)
    return bool(req.fps and req.interpolate_after) or (gif and not req.fps)


def ticks_out(time_base: Fraction) -> str:
    """Filters after which a frame's pts, as a count of 1/1000 s, is its pts in
    ``time_base`` ticks (what -enc_time_base 1:1000 then writes to Matroska unchanged)."""
    a, b = time_base.numerator, time_base.denominator
    return f"settb=1/{1000 * b},setpts=PTS/{1000 * a}*{b},settb=1/1000"


def ticks_in(time_base: Fraction, first_ticks: int, shift: int) -> str:
    """The inverse for the join: its input's pts (milliseconds, minus the first frame's, which
    ffmpeg subtracts) back to ticks of ``time_base``, less ``shift``."""
    a, b = time_base.numerator, time_base.denominator
    return (f"setpts=PTS+{first_ticks},settb=1/{1000 * b},setpts=PTS/{b}*{1000 * a},"
            f"settb={a}/{b},setpts=PTS-{shift}")


def split_after(cards: list[ModelCard], opts: GraphOptions, graph: str,
                time_base: Fraction) -> AfterSplit:
    """The per-frame part (``cards`` say where the models are) and the tail of ``graph``,
    proven to compose to it."""
    tail_label = f"[{opts.out_label}]"
    per_frame = render_graph(cards, replace(opts, fps=None, width=None, height=None,
                                            out_format=None, gif_palette=False))
    head = per_frame[:-len(tail_label)]
    if not per_frame.endswith(tail_label) or not graph.startswith(head + ",") or \
            not graph.endswith(tail_label):
        raise FfsrError("Internal: the filter graph does not split after the model; run "
                        "without --segments.")
    return AfterSplit(worker=f"{head},{ticks_out(time_base)}{tail_label}",
                      tail=graph[len(head) + 1:])
