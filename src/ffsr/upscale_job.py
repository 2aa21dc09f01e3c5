"""`ffsr upscale`: decode → [interpolate] → model(s) → encode in ONE ffmpeg process.

``plan_upscale`` makes every decision and builds the command (testable without running
it); ``run_upscale`` runs it into a temporary file that is renamed only on success.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import ffmpeg as ffmpeg_python

from ffsr.backends import get_backend
from ffsr.encoding import encoder_args, output_kind
from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import Capabilities, capabilities, choose_ffmpeg
from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.media import VideoInfo, probe
from ffsr.model_card import ModelCard, find_card
from ffsr.paths import cache_dir
from ffsr.progress import ProgressUpdate
from ffsr.runtime import Mount, run_docker, run_local, writable_staging

CONTAINER_IN, CONTAINER_OUT, CONTAINER_MODELS = "/in", "/out", "/models"
GPU_DEVICES = ("cuda",)


@dataclass(frozen=True)
class UpscaleRequest:
    input: Path
    models: Sequence[str]
    output: Path | None = None
    backend: str = "auto"
    device: str = "cpu"
    scale: int | None = None
    width: int | None = None
    height: int | None = None
    fps: Fraction | None = None
    interpolation: str = "minterpolate"
    interpolate_after: bool = False
    y_form: str = "compact"
    chroma_scaler: str = "bicubic"
    deinterlace: bool = False
    dedupe: bool = False
    encoder: str | None = None
    crf: int | None = None
    preset: str | None = None
    overwrite: bool = False
    runtime: str = "local"
    image: str | None = None
    frames: int | None = None
    """Stop after this many output frames (previews)."""


@dataclass
class UpscalePlan:
    request: UpscaleRequest
    cards: list[ModelCard]
    backend: str
    info: VideoInfo
    graph: str
    argv: list[str]
    output: Path
    partial: Path
    expected_frames: int | None
    notes: list[str] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)

    def command_line(self) -> str:
        """The command as a user would paste it: final output path, no progress pipe."""
        argv = [a for a in self.argv if a not in ("-progress", "pipe:1", "-nostats")]
        argv = [str(self.output) if a == str(self.partial) else a for a in argv]
        return shlex.join(argv)


def default_output(src: Path, scale: int) -> Path:
    suffix = src.suffix.lower() if src.suffix.lower() in (".gif", ".mkv", ".mov") else ".mp4"
    return src.with_name(f"{src.stem}_x{scale}{suffix}")


def resolve_cards(models: Sequence[str], log: Callable[[str], None]) -> list[ModelCard]:
    """Converted models by name; zoo models are converted on first use."""
    cards = []
    for name in models:
        try:
            cards.append(find_card(name))
        except FfsrError:
            from ffsr.zoo import zoo

            if name not in zoo():
                raise FfsrError(f"Unknown model '{name}': not in the zoo ({', '.join(zoo())}) and "
                                "no converted model of that name.") from None
            from ffsr.convert_model import convert_zoo_model

            log(f"converting {name} (first use)…")
            cards.append(convert_zoo_model(name, log=log))
    return cards


def choose_backend(requested: str, cards: Sequence[ModelCard], caps: Capabilities) -> str:
    """'auto': the first of onnx, torch, tensorflow that every model has and ffmpeg runs."""
    candidates = [requested] if requested != "auto" else ["onnx", "torch", "tensorflow"]
    for name in candidates:
        get_backend(name)
        if all(name in c.files for c in cards) and name in caps.dnn_backends:
            return name
    if requested != "auto":
        caps.require_backend(requested)
        missing = [c.name for c in cards if requested not in c.files]
        raise FfsrError(f"Model {', '.join(missing)} has no {requested} file; convert it with "
                        f"`ffsr convert-model --backends {requested}`.")
    have = ", ".join(sorted(caps.dnn_backends)) or "none"
    raise FfsrError(f"No DNN backend fits: this ffmpeg has {have}; run `ffsr build-ffmpeg`.")


def plan_upscale(req: UpscaleRequest, log: Callable[[str], None] = lambda _: None) -> UpscalePlan:
    if req.device not in ("cpu", *GPU_DEVICES):
        raise FfsrError(f"Unknown device '{req.device}'; choose cpu or cuda.")
    if req.device in GPU_DEVICES and req.runtime == "local":
        from ffsr.doctor import gpu_status

        visible, detail = gpu_status()
        if not visible:
            raise FfsrError(f"--device {req.device} was asked for, but {detail}.")
    choice = choose_ffmpeg()
    info = probe(choice.ffprobe, req.input)
    if info.frames == 0 or (info.duration is not None and info.duration <= 0):
        raise FfsrError(f"{req.input} has no video frames.")
    caps = capabilities(choice.ffmpeg)
    cards = resolve_cards(req.models, log)
    backend = choose_backend(req.backend, cards, caps)
    if req.device in GPU_DEVICES and not get_backend(backend).gpu_log_pattern:
        raise FfsrError(f"The {backend} backend cannot be checked to run on a GPU; use onnx or torch.")
    total = 1
    for c in cards:
        total *= c.scale
    if req.scale and req.scale != total:
        names = " + ".join(f"{c.name} (x{c.scale})" for c in cards)
        raise FfsrError(f"--scale {req.scale} does not match the model chain {names} = x{total}; "
                        "pick a model of that scale, or use --width/--height for a final resize.")
    notes = []
    if info.is_high_bit_depth:
        notes.append(f"{info.pix_fmt} input: FFmpeg's DNN filters take 8-bit frames, so it is "
                     "processed and written in 8 bits.")
    output = req.output or default_output(req.input, total)
    kind = output_kind(output)
    if output.resolve() == req.input.resolve():
        raise FfsrError("The output would overwrite the input; choose another -o.")
    if output.exists() and not req.overwrite:
        raise FfsrError(f"{output} exists; pass --overwrite to replace it.")
    if not output.parent.is_dir():
        raise FfsrError(f"Output folder does not exist: {output.parent}")
    alpha = info.has_alpha and kind.alpha
    in_docker = req.runtime == "docker"
    model_root = CONTAINER_MODELS if in_docker else None
    graph_cards = [replace(c, directory=Path(model_root) / c.name) if model_root else c
                   for c in cards]
    graph = render_graph(graph_cards, GraphOptions(
        backend=backend, device=req.device, y_form=req.y_form, chroma_scaler=req.chroma_scaler,
        fps=req.fps, interpolation=req.interpolation, interpolate_after=req.interpolate_after,
        width=req.width, height=req.height, deinterlace=req.deinterlace, dedupe=req.dedupe,
        alpha=alpha, gif_palette=kind.gif, in_label="0:v:0", out_label="vout"))
    partial = output.with_name(f".{output.stem}.ffsr-partial{output.suffix}")
    src = f"{CONTAINER_IN}/{req.input.name}" if in_docker else str(req.input)
    dst = f"{CONTAINER_OUT}/{partial.name}" if in_docker else str(partial)
    out_kwargs: dict[str, object] = {"map_metadata": 0}
    stream = ffmpeg_python.input(src)
    outputs = [stream["v:0"]]
    if kind.audio and info.has_audio:
        outputs.append(stream["a?"])
        out_kwargs["c:a"] = "copy"
    if kind.subtitle_codec:
        outputs.append(stream["s?"])
        out_kwargs["c:s"] = kind.subtitle_codec
    if req.fps:
        out_kwargs["fps_mode"] = "cfr"
    if req.frames:
        out_kwargs["frames:v"] = req.frames
    enc = encoder_args(kind, req.encoder, req.crf, req.preset, alpha, caps.encoders)
    out_kwargs.update(zip((k.lstrip("-") for k in enc[::2]), enc[1::2], strict=True))
    argv = ffmpeg_python.output(*outputs, dst, **out_kwargs).compile(cmd="ffmpeg")
    # ffmpeg-python names the filter graph itself; ffsr's graph comes from the templates,
    # so replace its "-map 0:v:0" with the labelled graph output.
    argv = _insert_graph(argv, graph)
    argv[1:1] = ["-hide_banner", "-nostdin", "-y", "-v", "info", "-progress", "pipe:1", "-nostats"]
    if in_docker:
        argv[0] = "ffmpeg"
    else:
        argv[0] = str(choice.ffmpeg)
    expected = info.frames
    if expected is None and info.duration and info.frame_rate:
        expected = int(round(info.duration * info.frame_rate))
    if expected and req.fps and info.frame_rate:
        expected = int(round(expected * req.fps / info.frame_rate))
    if req.frames:
        expected = min(expected or req.frames, req.frames)
    mounts = []
    if in_docker:
        # CONTAINER_OUT is mounted at run time: a staging folder the image's user can write.
        mounts = [Mount(req.input.resolve().parent, CONTAINER_IN, True)]
        mounts += [Mount(c.directory.resolve(), f"{CONTAINER_MODELS}/{c.name}", True) for c in cards]
    return UpscalePlan(req, cards, backend, info, graph, argv, output, partial, expected, notes,
                       mounts)


def _insert_graph(argv: list[str], graph: str) -> list[str]:
    out = list(argv)
    i = out.index("-map")
    assert out[i + 1] == "0:v:0", out
    out[i:i + 2] = ["-filter_complex", graph, "-map", "[vout]"]
    return out


@dataclass(frozen=True)
class UpscaleResult:
    output: Path
    frames: int
    seconds: float


def run_upscale(plan: UpscalePlan,
                on_progress: Callable[[ProgressUpdate], None] | None = None) -> UpscaleResult:
    """Run the plan; the output appears only when ffmpeg succeeded and checks passed."""
    req = plan.request
    logs = cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{plan.output.name}.{time.strftime('%Y%m%d-%H%M%S')}.log"
    started = time.monotonic()
    plan.partial.unlink(missing_ok=True)
    try:
        if req.runtime == "docker":
            from ffsr.image import default_tag

            image = req.image or default_tag("cuda" if req.device == "cuda" else "cpu")
            with writable_staging(plan.output.parent) as staging:
                mounts = [*plan.mounts, Mount(staging, CONTAINER_OUT, False)]
                result = run_docker(image, plan.argv, mounts, log_path,
                                    gpu=req.device == "cuda", on_progress=on_progress)
                if (staging / plan.partial.name).exists():
                    os.replace(staging / plan.partial.name, plan.partial)
        else:
            result = run_local(plan.argv, log_path, on_progress)
        _check_result(plan, result.returncode, result.frames, result.log, log_path)
        os.replace(plan.partial, plan.output)
    except BaseException:
        plan.partial.unlink(missing_ok=True)
        raise
    log_path.unlink(missing_ok=True)  # kept only when something went wrong
    return UpscaleResult(plan.output, result.frames, time.monotonic() - started)


def _check_result(plan: UpscalePlan, rc: int, frames: int, log: str, log_path: Path) -> None:
    if rc != 0:
        reason = _first_error(log)
        raise FfsrError(f"ffmpeg failed: {reason}", log_path=str(log_path))
    if frames <= 0:
        raise FfsrError(f"No frames were produced from {plan.request.input} (empty or unreadable "
                        "video stream).", log_path=str(log_path))
    if plan.request.device in GPU_DEVICES:
        backend = get_backend(plan.backend)
        if not backend.confirms_gpu(log):
            raise FfsrError(f"The {backend.name} backend did not run on the GPU (FFmpeg fell back "
                            "to the CPU or no GPU is visible); output discarded.",
                            log_path=str(log_path))
    if plan.expected_frames and frames < 0.9 * plan.expected_frames - 1:
        raise FfsrError(f"Only {frames} of {plan.expected_frames} frames came out: the input is "
                        "truncated or damaged; output discarded.", log_path=str(log_path))


def _first_error(log: str) -> str:
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith(("I0000", "WARNING: All"))]
    for ln in lines:
        low = ln.lower()
        if "error" in low or "failed" in low or "invalid" in low or "not " in low:
            return ln.split("] ", 1)[-1].strip()
    return lines[-1] if lines else "unknown error"
