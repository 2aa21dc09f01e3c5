"""Filter-graph rendering: Python decides (form, backend, sizes, escaping), the Jinja
templates in filtergraphs/ hold the graph's shape."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import PurePosixPath

import jinja2
import jinja2.bccache

from ffsr.backends import get_backend
from ffsr.errors import FfsrError
from ffsr.filterstring import filter_options
from ffsr.model_card import ModelCard
from ffsr.paths import FILTERGRAPHS_DIR, cache_dir

Y_FORMS = ("compact", "explicit", "sr")
INTERPOLATIONS = ("minterpolate", "framerate", "fps", "rife")
SCALERS = ("bicubic", "lanczos", "bilinear", "spline", "neighbor")


@dataclass(frozen=True)
class GraphOptions:
    """Everything that shapes the graph besides the models."""

    backend: str = "onnx"
    device: str = "cpu"
    y_form: str = "compact"
    chroma_scaler: str = "bicubic"
    yuv_format: str = "yuv420p"
    fps: Fraction | None = None
    interpolation: str = "minterpolate"
    interpolate_after: bool = False
    scd_threshold: float = 10.0
    width: int | None = None
    height: int | None = None
    final_scaler: str = "lanczos"
    deinterlace: bool = False
    dedupe: bool = False
    alpha: bool = False
    out_format: str | None = None
    gif_palette: bool = False
    in_label: str | None = None
    out_label: str | None = None
    backend_options: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    model_dir: str | None = None
    """Write model paths as ``model_dir/<model name>/<file>`` (relative stays relative) instead
    of this machine's absolute paths: for graphs run in a container or on another machine."""
    precision: str | None = None
    """Inference precision for backends that have the choice (see ffsr.precision)."""
    interpolator_model: str | None = None
    """The RIFE ONNX file for ``interpolation="rife"`` (ffsr.interpolation.rife): HD v3's
    side-by-side wrapper, or v4's timed wrapper when ``input_rate`` makes a ratio not 2x."""
    input_rate: Fraction | None = None
    """The input's frame rate, where known: RIFE at a ratio other than 2x needs it."""


@dataclass(frozen=True)
class ModelStep:
    """One model in the chain, as the templates see it."""

    id: str
    template: str
    filter: str
    options: str
    prescale: int
    model_scale: int
    yuv_format: str
    chroma_scaler: str


# Templates are laid out on several lines for people and joined into one line after
# rendering; whitespace and line breaks *inside values* (legal in file names) must survive
# that join, so they travel as NUL-led placeholders (NUL cannot occur in an argv string).
_PLACEHOLDER = re.compile("\x00([0-9a-f]{6})")


def _protect(text: str) -> str:
    return "".join(f"\x00{ord(ch):06x}" if ch.isspace() or ch in "\x1c\x1d\x1e\x85" else ch
                   for ch in text)


def _unprotect(text: str) -> str:
    return _PLACEHOLDER.sub(lambda m: chr(int(m.group(1), 16)), text)


def _protected_options(pairs: Sequence[tuple[str, object]]) -> str:
    return _protect(filter_options(pairs))


class _TolerantBytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's file cache, except that an entry it cannot read is compiled afresh: Jinja
    unpickles an entry's checksum unguarded and fails on a truncated file, which would
    break every later run until someone cleared the cache."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # any damage: recompile, and the dump replaces the entry
            bucket.reset()


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs: compiling upscale.j2 from source is ~12 ms of
    every `ffsr upscale` start. Jinja checks each entry against the template's source and
    writes entries atomically; no writable cache folder only means compiling each time."""
    folder = cache_dir() / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _TolerantBytecodeCache(str(folder)) if os.access(folder, os.W_OK) else None


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(FILTERGRAPHS_DIR),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=False, bytecode_cache=_bytecode_cache())
    env.globals["opts"] = _protected_options
    return env


def model_step(card: ModelCard, index: int, opts: GraphOptions) -> ModelStep:
    """Choose the filter and form that run ``card`` on ``opts.backend``."""
    backend = get_backend(opts.backend)
    if opts.device not in backend.devices:
        raise FfsrError(f"The {backend.name} backend cannot run on '{opts.device}' "
                        f"(it supports: {', '.join(backend.devices)}).")
    if opts.y_form == "sr" and (card.color != "y" or backend.name != "tensorflow"):
        raise FfsrError("The sr filter runs only Y-channel models on the tensorflow backend "
                        f"({card.name} is {card.color.upper()}, backend {backend.name}).")
    mf = card.file_for(backend.name)
    path = (str(PurePosixPath(opts.model_dir) / card.name / mf.path) if opts.model_dir
            else str(card.path_for(backend.name)))
    def step(template: str, filter_name: str, options: str, prescale: int) -> ModelStep:
        return ModelStep(id=f"m{index}", template=template, filter=filter_name, options=options,
                         prescale=prescale, model_scale=card.model_scale,
                         yuv_format=opts.yuv_format, chroma_scaler=opts.chroma_scaler)

    if opts.y_form == "sr":
        if "sr" not in mf.filters:
            raise FfsrError(f"{card.name}'s TensorFlow graph was not made for the sr filter.")
        options = _protect(filter_options([("dnn_backend", "tensorflow"), ("model", path),
                                           ("input", mf.input), ("output", mf.output),
                                           ("scale_factor", card.scale)]))
        return step("model_sr.j2", "sr", options, prescale=1)  # sr pre-scales by itself
    pairs: list[tuple[str, object]] = [("dnn_backend", backend.name), ("model", path)]
    if backend.name != "torch":  # LibTorch has no tensor names
        pairs += [("input", mf.input), ("output", mf.output)]
    if opts.device != "cpu":
        pairs.append(("device", opts.device))
    if opts.precision and backend.precision_option:
        pairs.append((backend.precision_option, opts.precision))
    pairs += list(backend.tuning) + list(opts.backend_options)
    options = _protect(filter_options(pairs))
    if mf.channels == 3:
        template = "model_rgb.j2"
    else:
        template = "model_y_explicit.j2" if opts.y_form == "explicit" else "model_y_compact.j2"
    return step(template, "dnn_processing", options, card.prescale)


RIFE_BACKENDS = ("onnx", "openvino")
"""Backends that run the RIFE wrapper (no TorchScript or TensorFlow export of it)."""


def rife_backend(backend: str) -> str:
    """The backend RIFE runs on: OpenVINO when the upscaling model runs there (its output
    equals ONNX Runtime's bit for bit at f32 for HD v3, 1.04-1.36x its speed on 2 cores:
    benchmarks/results/cpu-interpolation-2026-12-04.md), else ONNX Runtime."""
    return backend if backend in RIFE_BACKENDS else "onnx"


def _rife_options(opts: GraphOptions) -> str:
    """dnn_processing options for the RIFE wrapper, always f32: bf16 is not verified for it."""
    if not opts.interpolator_model:
        raise FfsrError("--interpolation rife needs the converted RIFE model (none was given).")
    backend = get_backend(rife_backend(opts.backend))
    pairs: list[tuple[str, object]] = [("dnn_backend", backend.name),
                                       ("model", opts.interpolator_model),
                                       ("input", "x"), ("output", "y"), *backend.tuning]
    if backend.precision_option:
        pairs.append((backend.precision_option, "f32"))
    if opts.device != "cpu":
        pairs.append(("device", opts.device))
    return _protected_options(pairs)


def rife_ratio(opts: GraphOptions) -> Fraction | None:
    """Input rate / output rate when RIFE v4 makes the frames (any known ratio but exactly 2x,
    and not after --dedupe, which doubles the drawings with HD v3); None for HD v3."""
    if opts.interpolation != "rife" or not opts.fps or not opts.input_rate or opts.dedupe:
        return None
    ratio = opts.input_rate / opts.fps
    return None if ratio == Fraction(1, 2) else ratio


def _dedupe_step(opts: GraphOptions) -> str:
    """Seconds between the distinct drawings that --dedupe keeps before RIFE: drawings held
    2 frames each sit at half the output rate, so RIFE's doubling lands on the output grid."""
    assert opts.fps
    step = 2 / opts.fps
    return f"{step.numerator}/{step.denominator}"


DEINTERLACE = "bwdif=mode=send_frame"
"""--deinterlace: one frame per frame (the rate stays; bwdif halves the time base)."""


def render_graph(cards: Sequence[ModelCard], opts: GraphOptions) -> str:
    """The filter graph for a chain of models, as one line."""
    if not cards and not opts.fps:
        raise FfsrError("No model given (-m none interpolates only, so it needs --fps).")
    if opts.y_form not in Y_FORMS:
        raise FfsrError(f"Unknown form '{opts.y_form}'; choose one of {', '.join(Y_FORMS)}.")
    if opts.interpolation not in INTERPOLATIONS:
        raise FfsrError(f"Unknown interpolation '{opts.interpolation}'; "
                        f"choose one of {', '.join(INTERPOLATIONS)}.")
    for scaler in (opts.chroma_scaler, opts.final_scaler):
        if scaler not in SCALERS:
            raise FfsrError(f"Unknown scaler '{scaler}'; choose one of {', '.join(SCALERS)}.")
    return _render([model_step(card, i, opts) for i, card in enumerate(cards)], cards, opts)


def render_before_model(opts: GraphOptions) -> str:
    """Only what runs before the first model (deinterlace, dedupe, interpolation when it
    comes first), ending in ``null``: the part of render_graph's output that --segments runs
    once over the whole clip (segments.prepass). Alpha, resizing and formats come later."""
    return _render([], [], replace(opts, alpha=False, out_format=None, gif_palette=False,
                                   width=None, height=None,
                                   fps=None if opts.interpolate_after else opts.fps))


def _render(steps: Sequence[ModelStep], cards: Sequence[ModelCard], opts: GraphOptions) -> str:
    rife_options = _rife_options(opts) if opts.fps and opts.interpolation == "rife" else ""
    dedupe_step = _dedupe_step(opts) if opts.dedupe and rife_options else ""
    total_scale = 1
    for card in cards:
        total_scale *= card.scale
    text = _env().get_template("upscale.j2").render(
        steps=steps, total_scale=total_scale, rife_options=rife_options, dedupe_step=dedupe_step,
        rife_ratio=rife_ratio(opts), input_rate=opts.input_rate, deinterlace_filter=DEINTERLACE,
        **{k: getattr(opts, k) for k in (
            "fps", "interpolation", "interpolate_after", "scd_threshold", "width", "height",
            "final_scaler", "deinterlace", "dedupe", "alpha", "out_format", "gif_palette",
            "in_label", "out_label")})
    return _unprotect("".join(line.strip() for line in text.splitlines()))


def render_interpolation(opts: GraphOptions) -> str:
    """Only the frame-rate change of ``opts`` (interpolate.j2), as one line: the part of
    render_graph's output that changes the rate, for checking an interpolator on its own."""
    if not opts.fps:
        raise FfsrError("No frame rate given.")
    rife_options = _rife_options(opts) if opts.interpolation == "rife" else ""
    text = _env().get_template("interpolate.j2").render(
        fps=opts.fps, interpolation=opts.interpolation, scd_threshold=opts.scd_threshold,
        rife_options=rife_options, rife_ratio=rife_ratio(opts), input_rate=opts.input_rate)
    return _unprotect("".join(line.strip() for line in text.splitlines()))
