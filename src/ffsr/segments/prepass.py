"""The pre-pass: the part of the graph before the model that looks across the whole clip
(`--fps` through minterpolate, framerate or fps; `--deinterlace`; `--dedupe` with those),
run once over the clip in one ffmpeg, written losslessly; the segments then cut that file.
With `--interpolate-after` the interpolator runs in the join (segments.after), which weighs
frames by their timestamps: the pre-pass file then carries its graph's pts as ticks of the
graph's time base where Matroska expects milliseconds, the workers pass them through (their
ticks are the file's milliseconds) and the join reads them back.

minterpolate's EPZS motion search starts from the previous frames' vectors, so every output
frame depends on the whole clip before it and no cut with bounded context reproduces it.
Running it once, exactly as the single-process graph runs it (same input, same options,
the file's start subtracted), gives the single-process frames by construction; the
segments only run the per-frame rest, which needs no context. The split is checked
textually: pre-pass graph + rest is the single-process graph, character for character.

The cost is a serial pass of the cheap part (minterpolate runs far faster than any neural
model here); the model, where the time goes, still runs in parallel segments. The file is
kept (with a done record) in the work folder until the join succeeds, so --resume redoes
it only when it is missing or damaged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import FfmpegChoice
from ffsr.filtergraph import GraphOptions, render_before_model, render_graph
from ffsr.model_card import ModelCard
from ffsr.progress import ProgressUpdate
from ffsr.segments.after import AfterSplit, split_after, tail_in_join, ticks_out
from ffsr.segments.executor import LocalExecutor, Task
from ffsr.segments.frames import graph_time_base, stream_time_base
from ffsr.segments.worker import INTERMEDIATE_FILE
from ffsr.upscale_job import NO_MODEL, UpscalePlan
from ffsr.zoo import sha256_file

PRE_FILE, PRE_DONE = "prepass.mkv", "prepass.done.json"
WORKER_LABEL = "0:0"
"""The pre-pass file's only stream, where the rest of the graph starts in each worker."""


@dataclass(frozen=True)
class Split:
    """The single-process graph as two graphs run one after the other."""

    pre: str
    """From the input's video stream to [vout]: the whole-clip part."""
    rest: str
    """From the pre-pass file's stream (WORKER_LABEL) to [vout]: the per-frame part (with
    --interpolate-after the interpolator too, which ``after`` moves to the join)."""
    ticks: Fraction | None = None
    """The pre-pass graph's output time base, whose ticks its file carries (--interpolate-after:
    the join interpolates); None: plain milliseconds."""
    after: AfterSplit | None = None
    """``rest`` cut after the model when the join interpolates (segments.after)."""

    @property
    def run_graph(self) -> str:
        """The pre-pass graph as it runs: ``pre``, writing ticks where the join needs them."""
        if self.ticks is None:
            return self.pre
        body, label = self.pre.rsplit("[", 1)
        return f"{body},{ticks_out(self.ticks)}[{label}"

    @property
    def worker(self) -> str:
        """What each worker runs on the pre-pass file."""
        return self.after.worker if self.after else self.rest


def needs_prepass(plan: UpscalePlan) -> bool:
    """Whether the part before the model looks across frames in a way segments cannot cut
    exactly (RIFE and plain --dedupe have their own exact cuts: segments.temporal, .dedupe)."""
    req = plan.request
    rife = bool(req.fps) and req.interpolation == "rife"
    interpolates_first = bool(req.fps) and not req.interpolate_after
    # --interpolation rife without --fps interpolates nothing: its --deinterlace needs the pass.
    return (interpolates_first or req.deinterlace) and not rife


def split_graph(plan: UpscalePlan) -> Split:
    """The pre-pass and per-frame graphs, proven to compose to the plan's graph."""
    opts = plan.graph_options
    if opts is None or list(plan.request.models) == [NO_MODEL]:
        raise FfsrError("--segments splits the model's work, and -m none runs no model; run "
                        "without --segments.")
    pre = render_before_model(opts)
    rest = per_frame_graph(plan.cards, opts)
    head, tail, rest_head = f"[{opts.in_label}]", f"null[{opts.out_label}]", f"[{WORKER_LABEL}]"
    if not (pre.startswith(head) and pre.endswith(tail) and rest.startswith(rest_head)) or \
            head + pre[len(head):-len(tail)] + rest[len(rest_head):] != plan.graph:
        raise FfsrError("Internal: the filter graph does not split into a whole-clip part and "
                        "a per-frame part; run without --segments.")
    if not tail_in_join(plan):
        return Split(pre=pre, rest=rest)
    ffprobe = FfmpegChoice(Path(plan.argv[0]), "").ffprobe
    ticks = graph_time_base(stream_time_base(ffprobe, plan.request.input, plan.info.index),
                            opts.deinterlace)
    # the workers read the pre-pass file, whose ticks are its milliseconds
    after = split_after(list(plan.cards), rest_options(opts, WORKER_LABEL), rest,
                        Fraction(1, 1000))
    return Split(pre=pre, rest=rest, ticks=ticks, after=after)


def rest_options(opts: GraphOptions, in_label: str | None = None) -> GraphOptions:
    """The options of the per-frame rest: the pre-pass's filters off, the interpolator kept
    where it runs after the model (in the join)."""
    return replace(opts, fps=opts.fps if opts.interpolate_after else None, deinterlace=False,
                   dedupe=False, in_label=in_label or opts.in_label)


def per_frame_graph(cards: Sequence[ModelCard], opts: GraphOptions) -> str:
    """The graph after the pre-pass, from the pre-pass file's stream (WORKER_LABEL) to the
    output; ``cards`` say where the models are (here, or in the image)."""
    rest = render_graph(cards, rest_options(opts))
    head = f"[{opts.in_label}]"
    if not rest.startswith(head):
        raise FfsrError("Internal: the per-frame graph does not start at the input.")
    return f"[{WORKER_LABEL}]" + rest[len(head):]


def prepass_argv(plan: UpscalePlan, graph: str, out: Path) -> list[str]:
    """The single-process command's input part, the pre-pass graph, a lossless file with
    the graph's own timestamps (the file's start subtracted, as in the single process)."""
    argv = plan.argv
    try:
        i = argv.index("-i")
    except ValueError:
        raise FfsrError("Internal: the upscale command has no input.") from None
    return [*argv[:i + 2], "-filter_complex", graph, "-map", "[vout]", "-an", "-sn",
            *INTERMEDIATE_FILE, str(out)]


def _record(folder: Path) -> dict[str, object] | None:
    try:
        data = json.loads((folder / PRE_DONE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def kept_prepass(folder: Path, graph: str) -> bool:
    """The pre-pass file of an earlier run, when its record says it was made by this graph
    and it still has the size and sha256 it was made with."""
    path, record = folder / PRE_FILE, _record(folder)
    return bool(record and record.get("graph") == graph and path.is_file()
                and path.stat().st_size == record.get("size")
                and sha256_file(path) == record.get("sha256"))


def run_prepass(plan: UpscalePlan, split: Split, folder: Path,
                on_progress: Callable[[int, ProgressUpdate], None] | None = None) -> Path:
    """Make (or keep) the pre-pass file; returns its path."""
    path = folder / PRE_FILE
    if kept_prepass(folder, split.run_graph):
        return path
    partial = folder / f".{PRE_FILE}.partial.mkv"

    def finish() -> None:
        os.replace(partial, path)
        tmp = folder / f".{PRE_DONE}.tmp"
        tmp.write_text(json.dumps({"graph": split.run_graph, "size": path.stat().st_size,
                                   "sha256": sha256_file(path)}, indent=1))
        os.replace(tmp, folder / PRE_DONE)

    task = Task(-1, prepass_argv(plan, split.run_graph, partial), folder / "prepass.log", finish,
                "The pre-pass")
    try:
        LocalExecutor(1).run([task], on_progress)
    finally:
        partial.unlink(missing_ok=True)
    if not path.is_file():
        raise FfsrError("The pre-pass was stopped before it finished.")
    return path
