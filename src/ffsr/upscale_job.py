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
from ffsr.encoding import audio_args, encoder_args, output_kind, subtitle_args
from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import Capabilities, capabilities, choose_ffmpeg
from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.gpu import require_backend_cuda, require_local_gpu, wants_gpu
from ffsr.media import VideoInfo, count_frames, expected_frames, probe
from ffsr.memory import check_memory
from ffsr.model_card import TF_GRAPH_ARCH, ModelCard, find_card
from ffsr.paths import cache_dir
from ffsr.precision import resolve_precision
from ffsr.progress import ProgressUpdate
from ffsr.runtime import Mount, run_docker, run_local, writable_staging
from ffsr.signals import stop_on_signals

CONTAINER_IN, CONTAINER_OUT, CONTAINER_MODELS = "/in", "/out", "/models"
GPU_DEVICES = ("cuda",)
NO_MODEL = "none"
"""``-m none``: no upscaling model, the graph only changes the frame rate."""
TRUNCATION_SIGNS = ("File ended prematurely",)
"""What ffmpeg's demuxers log when a file stops before its header says (Matroska, WebM)."""


@dataclass(frozen=True)
class UpscaleRequest:
    input: Path
    models: Sequence[str]
    output: Path | None = None
    backend: str = "auto"
    device: str = "cpu"
    precision: str = "auto"
    """auto: bf16 where the CPU has bf16 units and the backend can (OpenVINO), else f32."""
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
    pix_fmt: str | None = None
    """Output pixel format, e.g. yuv420p10le: 10-bit output from 8-bit processing."""
    crf: int | None = None
    preset: str | None = None
    overwrite: bool = False
    runtime: str = "local"
    image: str | None = None
    frames: int | None = None
    """Stop after this many output frames (previews)."""
    segments_in_image: bool = False
    """--segments with --runtime docker: the plan keeps this machine's paths (the join and a
    pre-pass run here) and each segment's ffmpeg runs in the image (segments.container)."""


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
    precision: str | None = None
    """What the plan asks the backend for (None: the model's own f32)."""
    graph_options: GraphOptions | None = None
    """What ``graph`` was rendered from (segments re-render parts of it: segments.prepass)."""

    def command_line(self) -> str:
        """The command as a user would paste it: final output path, no progress pipe."""
        argv = [a for a in self.argv if a not in ("-progress", "pipe:1", "-nostats")]
        argv = [str(self.output) if a == str(self.partial) else a for a in argv]
        return shlex.join(argv)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def default_output(src: Path, scale: int, fps: Fraction | None = None) -> Path:
    """<name>_x<scale> (<name>_<fps>fps without a model): GIF, MKV, MOV and WebM keep their
    container, stills become PNG, the rest MP4; an image-sequence pattern (img%03d.png) names
    a video after its prefix."""
    suffix = src.suffix.lower()
    stem = src.stem
    if "%" in stem:
        stem = stem.split("%", 1)[0].rstrip("_-. ") or "sequence"
        suffix = ".mp4"
    elif suffix in IMAGE_SUFFIXES:
        suffix = ".png"
    elif suffix not in (".gif", ".mkv", ".mov", ".webm"):
        suffix = ".mp4"
    tag = f"x{scale}" if fps is None else f"{str(fps).replace('/', '-')}fps"
    return src.with_name(f"{stem}_{tag}{suffix}")


def check_model_files(cards: Sequence[ModelCard], backend: str) -> None:
    """The file each card names for ``backend`` is the one conversion verified (sha256)."""
    from ffsr.zoo import sha256_file

    for card in cards:
        path = card.path_for(backend)
        if not path.is_file():
            raise FfsrError(f"Model {card.name}'s {backend} file is missing ({path}); convert it "
                            f"again with `ffsr convert-model`.")
        if sha256_file(path) != card.file_for(backend).sha256:
            raise FfsrError(f"Model {card.name}'s {backend} file changed after conversion (its "
                            f"sha256 no longer matches the card): convert it again with "
                            f"`ffsr convert-model`.")


def resolve_cards(models: Sequence[str], log: Callable[[str], None]) -> list[ModelCard]:
    """Converted models by name; zoo models and model files are converted on first use."""
    from ffsr.model_import import import_model_file, is_model_file

    if list(models) == [NO_MODEL]:
        return []  # interpolation only (plan_upscale and render_graph ask for --fps)
    cards = []
    for name in models:
        if is_model_file(name):
            cards.append(import_model_file(name, log))
            continue
        try:
            cards.append(find_card(name))
        except FfsrError:
            from ffsr.zoo import zoo

            if name not in zoo():
                raise FfsrError(f"Unknown model '{name}': not in the zoo ({', '.join(zoo())}), "
                                "no converted model of that name, and not a model file "
                                "(.onnx, .pb, .pt, .pth, .safetensors).") from None
            from ffsr.convert_model import convert_zoo_model

            log(f"converting {name} (first use)…")
            cards.append(convert_zoo_model(name, log=log))
    return cards


# The order auto takes where nothing is measured (GPUs, -m none, one usable backend, docker):
# fastest first in benchmarks/results on most CPUs; on the CPU ffsr.backend_choice measures.
AUTO_ORDER = {"cpu": ("openvino", "onnx", "torch", "tensorflow"), "cuda": ("onnx", "torch")}


def choose_backend(requested: str, cards: Sequence[ModelCard], caps: Capabilities,
                   device: str = "cpu", ffmpeg: Path | None = None, precision: str = "auto",
                   log: Callable[[str], None] = lambda _: None) -> str:
    """'auto': the fastest backend for ``device`` that every model has and ffmpeg runs: on
    the CPU, given the ``ffmpeg`` that will run the models, measured once (ffsr.backend_choice)."""
    if requested == "auto" and device == "cpu" and cards and ffmpeg is not None:
        from ffsr.backend_choice import fastest_backend

        if measured := fastest_backend(cards, ffmpeg, caps, AUTO_ORDER["cpu"], precision, log):
            return measured
    candidates = [requested] if requested != "auto" else list(AUTO_ORDER.get(device, ("onnx",)))
    for name in candidates:
        get_backend(name)
        if all(name in c.files for c in cards) and name in caps.dnn_backends:
            return name
    if requested != "auto":
        caps.require_backend(requested)
        graphs = [c.name for c in cards if c.arch == TF_GRAPH_ARCH]
        if graphs:
            raise FfsrError(f"Model {', '.join(graphs)} is a frozen TensorFlow graph that runs "
                            f"on the tensorflow backend only, not {requested}: use --backend "
                            "tensorflow (or auto).")
        missing = [c.name for c in cards if requested not in c.files]
        raise FfsrError(f"Model {', '.join(missing)} has no {requested} file; convert it with "
                        f"`ffsr convert-model --backends {requested}`.")
    have = ", ".join(sorted(caps.dnn_backends)) or "none"
    raise FfsrError(f"No DNN backend fits: this ffmpeg has {have}; run `ffsr build-ffmpeg`.")


def requested_backend(backend: str, y_form: str, cards: Sequence[ModelCard] = ()) -> str:
    """The backend asked for: the sr filter exists only on TensorFlow, so --form sr means it;
    so does a frozen TF graph (a .pb given with -m), which has no other file."""
    tf_only = any(c.arch == TF_GRAPH_ARCH for c in cards)
    return "tensorflow" if (y_form == "sr" or tf_only) and backend == "auto" else backend


def needs_backends(backend: str, y_form: str, cards: Sequence[ModelCard] = ()) -> set[str]:
    """Backends the binary must have (auto takes whatever the default build has)."""
    requested = requested_backend(backend, y_form, cards)
    return set() if requested == "auto" else {requested}


def plan_upscale(req: UpscaleRequest, log: Callable[[str], None] = lambda _: None) -> UpscalePlan:
    if req.device not in ("cpu", *GPU_DEVICES):
        raise FfsrError(f"Unknown device '{req.device}'; choose cpu or cuda.")
    if wants_gpu(req.device, req.encoder):  # before any work: one sentence naming the fix
        if req.runtime == "docker":
            from ffsr.docker_gpu import require_docker_gpu

            require_docker_gpu(req.image, req.device, req.encoder)
        else:
            require_local_gpu(req.device, req.encoder)
    choice = choose_ffmpeg(needs_backends(req.backend, req.y_form))
    info = probe(choice.ffprobe, req.input)
    if info.frames == 0 or (info.duration is not None and info.duration <= 0):
        raise FfsrError(f"{req.input} has no video frames.")
    if list(req.models) == [NO_MODEL] and not req.fps:
        raise FfsrError("-m none runs no model, so it needs --fps (interpolation only).")
    interpolator = _interpolator(req, info, choice.ffmpeg, log, choice.ffprobe)
    caps = capabilities(choice.ffmpeg)
    cards = resolve_cards(req.models, log)
    if needs_backends(req.backend, req.y_form, cards) - caps.dnn_backends:  # a .pb: the TF build
        choice = choose_ffmpeg(needs_backends(req.backend, req.y_form, cards))
        caps = capabilities(choice.ffmpeg)
    backend = choose_backend(requested_backend(req.backend, req.y_form, cards), cards, caps,
                             req.device, choice.ffmpeg if req.runtime == "local" else None,
                             req.precision, log)
    check_model_files(cards, backend)
    precision = resolve_precision(req.precision, backend, req.device, cards)
    if req.device in GPU_DEVICES and not get_backend(backend).gpu_log_pattern:
        raise FfsrError(f"The {backend} backend cannot be checked to run on a GPU; use onnx or torch.")
    if req.device in GPU_DEVICES and req.runtime == "local":
        require_backend_cuda(choice.ffmpeg, backend)
    if req.device == "cpu":  # the rules are measured on CPUs; GPU memory is another matter
        check_memory(cards, backend, info.width, info.height, ffmpeg=choice.ffmpeg,
                     precision=precision, log=log)
    total = 1
    for c in cards:
        total *= c.scale
    if req.scale and req.scale != total:
        names = " + ".join(f"{c.name} (x{c.scale})" for c in cards)
        raise FfsrError(f"--scale {req.scale} does not match the model chain {names} = x{total}; "
                        "pick a model of that scale, or use --width/--height for a final resize.")
    notes = []
    if info.is_high_bit_depth:
        written = f"written as {req.pix_fmt}" if req.pix_fmt else "written in 8 bits"
        notes.append(f"{info.pix_fmt} input: FFmpeg's DNN filters take 8-bit frames, so it is "
                     f"processed in 8 bits and {written}.")
    output = req.output or default_output(req.input, total, None if cards else req.fps)
    kind = output_kind(output)
    if output.resolve() == req.input.resolve():
        raise FfsrError("The output would overwrite the input; choose another -o.")
    if output.exists() and not req.overwrite:
        raise FfsrError(f"{output} exists; pass --overwrite to replace it.")
    if not output.parent.is_dir():
        raise FfsrError(f"Output folder does not exist: {output.parent}")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise FfsrError(f"Output folder is not writable: {output.parent}")
    alpha = info.has_alpha and kind.alpha
    if info.has_alpha and not kind.alpha:
        notes.append(f"the input has an alpha channel ({info.pix_fmt}) that a {output.suffix} file "
                     "cannot hold: it is dropped (.apng, .png and .gif keep it).")
    in_docker = req.runtime == "docker" and not req.segments_in_image
    graph_cards = container_cards(cards) if in_docker else cards
    graph_options = GraphOptions(
        backend=backend, device=req.device, precision=precision, y_form=req.y_form,
        chroma_scaler=req.chroma_scaler, fps=req.fps, interpolation=req.interpolation,
        interpolate_after=req.interpolate_after,
        width=req.width, height=req.height, deinterlace=req.deinterlace, dedupe=req.dedupe,
        alpha=alpha, gif_palette=kind.gif, in_label=f"0:{info.index}", out_label="vout",
        interpolator_model=interpolator, input_rate=info.frame_rate)
    graph = render_graph(graph_cards, graph_options)
    # One partial file per run: two runs writing the same output never share one.
    partial = output.with_name(f".{output.stem}.ffsr-partial-{os.getpid()}-{os.urandom(3).hex()}"
                               f"{output.suffix}")
    src = f"{CONTAINER_IN}/{req.input.name}" if in_docker else str(req.input)
    dst = f"{CONTAINER_OUT}/{partial.name}" if in_docker else str(partial)
    out_kwargs: dict[str, object] = {"map_metadata": 0}
    stream = ffmpeg_python.input(src)
    outputs = [stream["v:0"]]
    if kind.audio and info.has_audio:
        outputs.append(stream["a?"])
        audio = audio_args(kind, info.audio_codecs, caps.encoders)
        out_kwargs.update(zip((k.lstrip("-") for k in audio[::2]), audio[1::2], strict=True))
    subs, subs_note = subtitle_args(kind, info.subtitle_codecs, caps.encoders)
    if subs:
        outputs.append(stream["s?"])
        out_kwargs["c:s"] = subs[1]
    if subs_note:
        notes.append(subs_note)
    if req.fps:
        out_kwargs["fps_mode"] = "cfr"
    if req.frames:
        out_kwargs["frames:v"] = req.frames
    expected = expected_frames(choice.ffprobe, req.input, info, req.fps)
    if req.frames:
        expected = min(expected or req.frames, req.frames)
    encoder = req.encoder
    if output.suffix.lower() == ".png":
        # By its extension ffmpeg would pick the image2 muxer, which writes APNG frames as
        # junk: a still becomes a plain PNG, anything longer an APNG.
        still = expected == 1
        out_kwargs.update({"f": "image2", "update": 1} if still else {"f": "apng"})
        encoder = encoder or ("png" if still else None)
    enc = encoder_args(kind, encoder, req.crf, req.preset, alpha, caps.encoders,
                       pix_fmt=req.pix_fmt, suffix=output.suffix.lower())
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
    mounts = []
    if req.runtime == "docker":
        # CONTAINER_OUT is mounted at run time: a staging folder the image's user can write.
        mounts = [Mount(req.input.resolve().parent, CONTAINER_IN, True)]
        mounts += model_mounts(cards)
    return UpscalePlan(req, cards, backend, info, graph, argv, output, partial, expected, notes,
                       mounts, precision, graph_options)


def _interpolator(req: UpscaleRequest, info: VideoInfo, ffmpeg: Path,
                  log: Callable[[str], None], ffprobe: Path | None = None) -> str | None:
    """The RIFE model file when --interpolation rife is asked for (rate, and with --dedupe the
    held frames, checked first)."""
    if not (req.fps and req.interpolation == "rife"):
        return None
    from ffsr.interpolation.rife import check_clip, model_name, rife_model

    frames = info.frames
    if frames is None and ffprobe and (not info.duration or not info.frame_rate
                                       or info.duration * info.frame_rate < 4):
        frames = count_frames(ffprobe, req.input)  # Matroska records no count; a short clip
    check_clip(req.fps, info.frame_rate, frames, req.runtime, req.dedupe,
               (info.width, info.height))
    if req.dedupe:
        from ffsr.interpolation.dedupe import check_dedupe

        check_dedupe(ffmpeg, req.input, info.frame_rate, info.index, req.deinterlace)
    return str(rife_model(log, name=model_name(req.fps, info.frame_rate, req.dedupe)).path)


def container_cards(cards: Sequence[ModelCard]) -> list[ModelCard]:
    """The cards as the image sees them: each model's folder mounted at /models/<name>."""
    return [replace(c, directory=Path(CONTAINER_MODELS) / c.name) for c in cards]


def model_mounts(cards: Sequence[ModelCard]) -> list[Mount]:
    """Each model's folder, read-only at /models/<name>, where container graphs look."""
    return [Mount(c.directory.resolve(), f"{CONTAINER_MODELS}/{c.name}", True) for c in cards]


def container_image(req: UpscaleRequest) -> str:
    """The image --runtime docker runs: --image, else the default tag of the device's flavour."""
    from ffsr.image import default_tag

    return req.image or default_tag("cuda" if wants_gpu(req.device, req.encoder) else "cpu")


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
    # One log per run (the pid: two runs of the same command in the same second).
    log_path = logs / f"{plan.output.name}.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    started = time.monotonic()
    plan.partial.unlink(missing_ok=True)
    with stop_on_signals():  # SIGTERM/SIGHUP/SIGINT unwind through the cleanup below
        return _run(plan, req, log_path, started, on_progress)


def _run(plan: UpscalePlan, req: UpscaleRequest, log_path: Path, started: float,
         on_progress: Callable[[ProgressUpdate], None] | None) -> UpscaleResult:
    try:
        if req.runtime == "docker":
            image = container_image(req)
            with writable_staging(plan.output.parent) as staging:
                mounts = [*plan.mounts, Mount(staging, CONTAINER_OUT, False)]
                result = run_docker(image, plan.argv, mounts, log_path,
                                    gpu=wants_gpu(req.device, req.encoder), on_progress=on_progress)
                if (staging / plan.partial.name).exists():
                    os.replace(staging / plan.partial.name, plan.partial)
        else:
            result = run_local(plan.argv, log_path, on_progress)
        check_result(plan, result.returncode, result.frames, result.log, log_path)
        publish(plan.partial, plan.output, req.overwrite)
    except BaseException:
        plan.partial.unlink(missing_ok=True)
        raise
    log_path.unlink(missing_ok=True)  # kept only when something went wrong
    return UpscaleResult(plan.output, result.frames, time.monotonic() - started)


def publish(partial: Path, output: Path, overwrite: bool) -> None:
    """Move the finished file into place atomically. Without ``overwrite`` an output that
    appeared meanwhile (another run of the same command) is never replaced: a hard link
    fails when the name exists, where a rename would not."""
    if overwrite:
        os.replace(partial, output)
        return
    try:
        os.link(partial, output)
    except FileExistsError:
        raise FfsrError(f"{output} appeared while this run was writing it (another ffsr run?); "
                        "pass --overwrite to replace it.") from None
    except OSError:  # no hard links here (FAT, some network file systems)
        if output.exists():
            raise FfsrError(f"{output} appeared while this run was writing it (another ffsr "
                            "run?); pass --overwrite to replace it.") from None
        os.replace(partial, output)
        return
    partial.unlink()


def check_result(plan: UpscalePlan, rc: int, frames: int, log: str, log_path: Path) -> None:
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
    # The count says "truncated" only where frames map one to one: --dedupe drops frames on
    # purpose and interpolators end a few frames early (truncation signs in the log still count).
    one_to_one = not plan.request.dedupe and not plan.request.fps
    if one_to_one and plan.expected_frames and frames < 0.9 * plan.expected_frames - 1:
        raise FfsrError(f"Only {frames} of {plan.expected_frames} frames came out: the input is "
                        "truncated or damaged; output discarded.", log_path=str(log_path))
    if any(sign in log for sign in TRUNCATION_SIGNS):
        raise FfsrError(f"{plan.request.input} ends before its stated duration (a truncated "
                        "file); output discarded.", log_path=str(log_path))


def _first_error(log: str) -> str:
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith(("I0000", "WARNING: All"))]
    for ln in lines:
        low = ln.lower()
        if "error" in low or "failed" in low or "invalid" in low or "not " in low:
            return ln.split("] ", 1)[-1].strip()
    return lines[-1] if lines else "unknown error"
