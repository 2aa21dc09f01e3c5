"""Speed and memory of ffsr against the ways people upscale video today (issue 6).

Every path runs in its own process(es), so that its wall time, steady-state fps and peak
memory (``wait4``'s ``ru_maxrss``) belong to it alone:

- ``ffsr``: the graph ``ffsr upscale`` renders, in ONE ffmpeg process;
- ``python pipeline``: ffmpeg decode pipe → numpy → onnxruntime → ffmpeg encode pipe, with
  reader and writer threads doing the conversions (the best such a pipeline can do);
- ``png round trip``: ffmpeg extracts PNGs, a PIL + onnxruntime loop writes PNGs, ffmpeg
  reads them back (what most upscaling scripts do);
- ``ceiling``: onnxruntime alone on frames already in memory (the model's own cost);
- ``lanczos`` / ``bicubic``: FFmpeg's scale filter, the floor.

All outputs go to ``-f null`` so no path pays for an encoder the others skip. The Python
paths use the card's ``.onnx`` and a plain ffmpeg (the distribution's, if there is one):
that is what such scripts run with, and the ffsr build's linked TensorFlow/LibTorch would
add ~0.8 GB of resident libraries and ~0.4 s of start-up to each of their ffmpeg processes.
The worker side runs as ``python -m ffsr.bench JOB JSON``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffsr.backends import BACKENDS
from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import Capabilities, choose_ffmpeg
from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.media import probe, read_frames, read_yuv420p_y
from ffsr.model_card import ModelCard, find_card
from ffsr.progress import ProgressUpdate, parse_progress
from ffsr.quality import to_8bit
from ffsr.upscale_job import choose_backend

PATHS = ("ffsr", "python pipeline", "png round trip", "ceiling", "lanczos", "bicubic")
STATS_PERIOD_S = 0.1
"""How often ffmpeg writes a -progress block: fine enough to find the steady state."""


# ---------------------------------------------------------------- results and pure helpers


@dataclass(frozen=True)
class Measurement:
    """One path on one case: frames done, wall time, steady-state fps, peak memory."""

    path: str
    backend: str
    frames: int
    wall_s: float
    steady_fps: float | None
    """Frames per second once the first frame is out (start-up excluded); None if the
    run was too short to tell."""
    peak_mb: float
    """Peak resident memory: the sum over concurrent processes, the max over sequential ones."""
    detail: str = ""
    rss_top: tuple[tuple[str, float], ...] = ()
    """Largest resident mappings (MB) sampled mid-run, where asked for."""
    phases: tuple[tuple[str, float], ...] = ()
    """Seconds per phase, for paths that have them (PNG round trip: ffmpeg extract, PIL
    decode/convert/PNG save, the model itself, ffmpeg reassemble)."""

    @property
    def wall_fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def fps(self) -> float:
        """Steady-state fps where known, else whole-run fps."""
        return self.steady_fps if self.steady_fps else self.wall_fps

    @property
    def label(self) -> str:
        return f"ffsr {self.backend}" if self.path == "ffsr" else self.path


def steady_fps(samples: Sequence[tuple[float, int]]) -> float | None:
    """Output rate from the first frame out to the next-to-last count: what a long job
    converges to, without the process start-up and model load.

    ``samples`` are (monotonic time, frames done so far). The final count is left out: it
    arrives with the end of the run (ffmpeg's last -progress block comes after teardown,
    and with ``-frames:v`` one more frame may already be in the model when the output
    closes), not at steady state. Each count is timed when it was first seen.
    """
    started = [(t, f) for t, f in samples if f > 0]
    if not started:
        return None
    before = [(t, f) for t, f in started if f < started[-1][1]]
    if not before:
        return None
    t0, f0 = before[0]
    f1 = before[-1][1]
    t1 = next(t for t, f in before if f == f1)
    if f1 <= f0 or t1 - t0 < 2 * STATS_PERIOD_S:  # too short a window to mean anything
        return None
    return (f1 - f0) / (t1 - t0)


def frames_for(fps: float, seconds: float, lo: int = 4, hi: int = 60) -> int:
    """Frames that keep one path busy for about ``seconds`` at ``fps``."""
    return int(min(hi, max(lo, round(fps * seconds))))


def rss_by_file(smaps: str) -> dict[str, float]:
    """Resident MB per mapped file in /proc/PID/smaps text (anonymous memory: '[anon]')."""
    out: dict[str, float] = {}
    name = "[anon]"
    for line in smaps.splitlines():
        fields = line.split()
        if fields and re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", fields[0]):
            path = fields[5] if len(fields) > 5 else ""
            name = os.path.basename(path) if path.startswith("/") else (path or "[anon]")
        elif fields[:1] == ["Rss:"]:
            out[name] = out.get(name, 0.0) + int(fields[1]) / 1024
    return out


@dataclass(frozen=True)
class Summary:
    """ffsr against the other paths of the same run (None where a path is missing)."""

    ffsr_fps: float | None
    of_ceiling: float | None
    vs_python: float | None
    """ffsr steady fps / Python pipeline steady fps."""
    vs_png: float | None
    """ffsr steady fps / PNG round trip fps over its extract + images + reassemble steps."""


def summarize(ms: Sequence[Measurement], backend: str = "onnx") -> Summary:
    by = {m.label: m for m in ms}
    ffsr = by.get(f"ffsr {backend}")
    if ffsr is None:
        return Summary(None, None, None, None)

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    ceiling, python, png = by.get("ceiling"), by.get("python pipeline"), by.get("png round trip")
    return Summary(ffsr.fps,
                   ratio(ffsr.fps, ceiling.fps if ceiling else None),
                   ratio(ffsr.fps, python.fps if python else None),
                   ratio(ffsr.fps, png.fps if png else None))


def best_of(runs: Sequence[Measurement]) -> Measurement:
    """The least disturbed of repeated runs of one path (the fastest, as timeit does):
    on a shared machine other work only ever slows a run down."""
    return max(runs, key=lambda m: m.fps)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x: float | None, digits: int = 1, suffix: str = "") -> str:
    return "–" if x is None else f"{x:.{digits}f}{suffix}"


def measurement_table(ms: Sequence[Measurement]) -> str:
    """The per-path table `ffsr bench` prints."""
    rows = [(m.label, m.frames, fmt(m.steady_fps), fmt(m.wall_fps), f"{m.wall_s:.2f}",
             f"{m.peak_mb:.0f}", m.detail) for m in ms]
    return markdown_table(("path", "frames", "steady fps", "whole-run fps", "wall s", "peak MB",
                           "notes"), rows)


def summary_lines(s: Summary, backend: str) -> str:
    return (f"ffsr ({backend}): {fmt(s.ffsr_fps)} fps = {fmt(s.of_ceiling, 2)} of the model-only "
            f"ceiling, {fmt(s.vs_python, 2)}× the Python pipeline, {fmt(s.vs_png, 1)}× the PNG "
            "round trip")


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class ProcResult:
    returncode: int
    wall_s: float
    maxrss_mb: float
    """ru_maxrss of the process (and of any children it waited for)."""
    stdout: str
    log: str


def run_measured(argv: Sequence[str], on_stdout: Callable[[Iterable[str], int], None] | None = None,
                 env: dict[str, str] | None = None) -> ProcResult:
    """Run ``argv``; stdout goes to ``on_stdout(lines, pid)`` or is collected; wall time
    and peak memory come from ``wait4`` on this very process."""
    with tempfile.TemporaryFile("w+") as log:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=log, text=True,
                                    stdin=subprocess.DEVNULL, env=env)
        except OSError as e:
            raise FfsrError(f"Cannot start {argv[0]}: {e.strerror}.") from e
        assert proc.stdout is not None
        out = ""
        try:
            if on_stdout:
                on_stdout(proc.stdout, proc.pid)
                proc.stdout.read()
            else:
                out = proc.stdout.read()
        except BaseException:
            proc.kill()
            raise
        finally:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        log.seek(0)
        return ProcResult(proc.returncode, wall, usage.ru_maxrss / 1024, out, log.read())


def check_run(res: ProcResult, what: str) -> None:
    """Raise with the last log lines when a measured process failed."""
    if res.returncode != 0:
        tail = [ln for ln in res.log.splitlines() if ln.strip() and not ln.startswith(
            ("I0000", "WARNING: All"))][-3:]
        raise FfsrError(f"{what} failed (exit {res.returncode}): {' / '.join(tail)}")


@dataclass(frozen=True)
class Tools:
    """The ffsr ffmpeg (ffsr and the floor) and a plain one (the Python paths)."""

    ffmpeg: Path
    ffprobe: Path
    plain: Path


def named_backends(requested: str) -> set[str]:
    """The backends a --backend list names (none for 'auto' and 'all'): the ffmpeg that runs
    the bench must have them, as `ffsr upscale --backend torch` takes the build with torch."""
    if requested in ("auto", "all"):
        return set()
    return {b.strip() for b in requested.split(",") if b.strip()}


def find_tools(needs: Collection[str] = ()) -> Tools:
    choice = choose_ffmpeg(needs)
    on_path = shutil.which("ffmpeg")
    return Tools(choice.ffmpeg, choice.ffprobe, Path(on_path) if on_path else choice.ffmpeg)


@dataclass(frozen=True)
class Case:
    """What one measurement runs: a clip (frames from its start) and a model."""

    input: Path
    card: ModelCard
    frames: int
    width: int
    height: int


def make_case(tools: Tools, input: Path, card: ModelCard, frames: int) -> Case:
    info = probe(tools.ffprobe, input)
    return Case(input, card, frames, info.width, info.height)


def make_clip(ffmpeg: Path, src: Path, dst: Path, width: int, height: int, frames: int,
              start: float = 0.0) -> Path:
    """A test input of the given size cut from a real clip (H.264, as users have it)."""
    argv = [str(ffmpeg), "-v", "error", "-y", "-nostdin", "-ss", str(start), "-i", str(src), "-an",
            "-vf", f"scale={width}:{height}:flags=bicubic,format=yuv420p",
            "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
            str(dst)]
    check_run(run_measured(argv), f"making {dst.name}")
    return dst


def _progress_run(argv: list[str], sample_rss: bool = False, stop_after: float | None = None,
                  ) -> tuple[ProcResult, list[tuple[float, int]], tuple[tuple[str, float], ...]]:
    """Run ffmpeg with -progress on stdout: (time, frame) samples, optionally the largest
    resident mappings once frames flow, optionally SIGINT ``stop_after`` s after frame 1."""
    samples: list[tuple[float, int]] = []
    top: list[tuple[str, float]] = []
    stopped: list[bool] = []

    def on_stdout(lines: Iterable[str], pid: int) -> None:
        def on_update(u: ProgressUpdate) -> None:
            now = time.monotonic()
            samples.append((now, u.frame))
            first = next((t for t, f in samples if f > 0), None)
            if stop_after and first and now - first > stop_after and not stopped:
                os.kill(pid, signal.SIGINT)  # ffmpeg ends cleanly (exit 255) on the first one
                stopped.append(True)
            if sample_rss and not top and u.frame > 0 and not u.done:
                try:
                    rss = rss_by_file(Path(f"/proc/{pid}/smaps").read_text())
                except OSError:
                    return
                top.extend(sorted(rss.items(), key=lambda kv: -kv[1])[:6])

        parse_progress(lines, on_update)

    res = run_measured(argv, on_stdout)
    if stopped and res.returncode == 255:
        res = ProcResult(0, res.wall_s, res.maxrss_mb, res.stdout, res.log)
    return res, samples, tuple(top)


def _ffmpeg_head(ffmpeg: Path) -> list[str]:
    return [str(ffmpeg), "-hide_banner", "-nostdin", "-y", "-v", "info",
            "-stats_period", str(STATS_PERIOD_S), "-progress", "pipe:1", "-nostats"]


def measure_graph(ffmpeg: Path, input: Path, graph: str, frames: int, path: str, backend: str = "",
                  sample_rss: bool = False) -> tuple[Measurement, ProcResult]:
    """Any filter graph (input ``[0:v:0]``, output ``[vout]``) over the first ``frames``
    frames of ``input`` in one ffmpeg process, to ``-f null``: the measurement and the run
    (whose log says, for instance, which precision a backend compiled)."""
    argv = _ffmpeg_head(ffmpeg) + ["-i", str(input), "-filter_complex", graph, "-map", "[vout]",
                                   "-frames:v", str(frames), "-f", "null", "-"]
    res, samples, top = _progress_run(argv, sample_rss=sample_rss)
    check_run(res, f"{path} {backend}".strip())
    done = samples[-1][1] if samples else 0
    return Measurement(path, backend, done, res.wall_s, steady_fps(samples), res.maxrss_mb,
                       rss_top=top), res


def measure_ffsr(tools: Tools, case: Case, backend: str = "onnx",
                 sample_rss: bool = False) -> Measurement:
    """ffsr: the graph `ffsr upscale` renders (same options), one ffmpeg process."""
    graph = render_graph([case.card], GraphOptions(backend=backend, in_label="0:v:0",
                                                   out_label="vout"))
    return measure_graph(tools.ffmpeg, case.input, graph, case.frames, "ffsr", backend,
                         sample_rss)[0]


def measure_scale(tools: Tools, input: Path, scale: int, flags: str,
                  seconds: float = 2.0) -> Measurement:
    """The floor: FFmpeg's own scaler on the clip looped, stopped ``seconds`` after its
    first frame (it is orders of magnitude faster than any model)."""
    argv = _ffmpeg_head(tools.ffmpeg) + ["-stream_loop", "-1", "-i", str(input), "-vf",
                                         f"scale=iw*{scale}:ih*{scale}:flags={flags}",
                                         "-f", "null", "-"]
    res, samples, _ = _progress_run(argv, stop_after=seconds)
    check_run(res, f"ffmpeg scale ({flags})")
    done = samples[-1][1] if samples else 0
    return Measurement(flags, "", done, res.wall_s, steady_fps(samples), res.maxrss_mb)


def _worker(tools: Tools, job: str, case: Case, **extra: object) -> tuple[ProcResult, dict[str, Any]]:
    args = {"card": str(case.card.directory / f"{case.card.name}.card.json"),
            "input": str(case.input), "frames": case.frames, "width": case.width,
            "height": case.height, "plain": str(tools.plain), **extra}
    res = run_measured([sys.executable, "-m", "ffsr.bench", job, json.dumps(args)])
    check_run(res, job)
    return res, json.loads(res.stdout.strip().splitlines()[-1])


def measure_python_pipeline(tools: Tools, case: Case) -> Measurement:
    res, out = _worker(tools, "pipeline", case)
    peak = out["self_mb"] + out["decoder_mb"] + out["encoder_mb"]
    return Measurement("python pipeline", "onnx", out["frames"], res.wall_s, out["steady_fps"],
                       peak, "decoder + Python + encoder processes")


def measure_png_roundtrip(tools: Tools, case: Case) -> Measurement:
    res, out = _worker(tools, "png", case)
    phases = tuple((k, float(out[f"{k}_s"])) for k in ("extract", "images", "model", "assemble"))
    detail = ", ".join(f"{k} {v:.1f}s" for k, v in phases)
    work = sum(v for _, v in phases)
    # Its "steady state": the frames over its four steps, i.e. without the Python start-up
    # and model load, as ffsr's steady state is without ffmpeg's.
    return Measurement("png round trip", "onnx", out["frames"], res.wall_s,
                       out["frames"] / work if work > 0 else None,
                       max(out["self_mb"], out["children_mb"]), detail, phases=phases)


def measure_ceiling(tools: Tools, case: Case, min_seconds: float = 0.0) -> Measurement:
    """onnxruntime alone on ``case.frames`` preloaded frames (cycled until ``min_seconds``)."""
    res, out = _worker(tools, "ceiling", case, min_seconds=min_seconds)
    return Measurement("ceiling", "onnx", out["runs"], out["seconds"], out["fps"], out["self_mb"],
                       f"{out['preloaded']} frames preloaded")


def choose_bench_backends(requested: str, card: ModelCard, caps: Capabilities) -> list[str]:
    """'auto': the backend `ffsr upscale` would pick; 'all': every one the model and this
    ffmpeg both have; else a comma-separated list (each checked)."""
    if "onnx" not in card.files:
        raise FfsrError(f"{card.name} has no .onnx file, which the Python paths run; convert it "
                        "with `ffsr convert-model --backends onnx,…`.")
    if requested == "all":
        return [b for b in BACKENDS if b in card.files and b in caps.dnn_backends]
    return [choose_backend(b.strip(), [card], caps) for b in requested.split(",") if b.strip()]


def bench_clip(input: Path, card: ModelCard, backends: Sequence[str], frames: int,
               floor_seconds: float = 2.0, log: Callable[[str], None] = lambda _: None,
               tools: Tools | None = None, repeats: int = 1) -> list[Measurement]:
    """Every path on the first ``frames`` frames of ``input`` (what `ffsr bench` prints);
    with ``repeats`` each path's best run is kept."""
    if frames < 1:
        raise FfsrError("--frames must be at least 1.")
    import importlib.util

    missing = [m for m in ("onnxruntime", "PIL") if importlib.util.find_spec(m) is None]
    if missing:
        raise FfsrError(f"The Python paths need {' and '.join(missing)}: "
                        "pip install onnxruntime pillow.")
    tools = tools or find_tools()
    case = make_case(tools, input, card, frames)
    steps: list[tuple[str, Callable[[], Measurement]]] = []
    for b in backends:
        steps.append((f"ffsr {b}", lambda b=b: measure_ffsr(tools, case, b)))  # type: ignore[misc]
    steps += [("python pipeline", lambda: measure_python_pipeline(tools, case)),
              ("png round trip", lambda: measure_png_roundtrip(tools, case)),
              ("ceiling", lambda: measure_ceiling(tools, case)),
              ("lanczos", lambda: measure_scale(tools, input, card.scale, "lanczos", floor_seconds)),
              ("bicubic", lambda: measure_scale(tools, input, card.scale, "bicubic", floor_seconds))]
    runs: dict[str, list[Measurement]] = {name: [] for name, _ in steps}
    for _ in range(max(1, repeats)):  # interleaved, so a burst of other load hits one run
        for name, step in steps:
            log(f"measuring {name}…")
            runs[name].append(step())
    return [best_of(r) for r in runs.values()]


def plot_measurements(ms: Sequence[Measurement], out: Path, title: str) -> Path:
    """A bar chart of fps per path (log scale: the floor is orders of magnitude faster)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise FfsrError("--plot needs matplotlib: pip install matplotlib.") from e
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [m.label for m in ms]
    ax.barh(labels, [m.fps for m in ms], color=["C0" if m.path == "ffsr" else "C7" for m in ms])
    ax.set_xscale("log")
    ax.set_xlabel("frames per second (steady state)")
    ax.set_title(title)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


# ---------------------------------------------------------------- video quality


@dataclass(frozen=True)
class VideoScore:
    clip: str
    method: str
    scale: int
    frames: int
    psnr_y: float
    ssim_y: float


def parse_quality_log(log: str) -> dict[str, tuple[float, float]]:
    """Y PSNR and Y SSIM per method from psnr@NAME / ssim@NAME summary lines."""
    psnrs = dict(re.findall(r"\[psnr@(\w+) @ [^\]]+\] PSNR y:([\d.]+|inf)", log))
    ssims = dict(re.findall(r"\[ssim@(\w+) @ [^\]]+\] SSIM Y:([\d.]+)", log))
    return {k: (float(v), float(ssims[k])) for k, v in psnrs.items() if k in ssims}


def video_quality(ffmpeg: Path, ffprobe: Path, clip: Path, scale: int, cards: Sequence[ModelCard],
                  frames: int, backend: str = "onnx", start: float = 0.0) -> list[VideoScore]:
    """Downscale a clip (bicubic), upscale it with each model and with bicubic/lanczos, and
    compare with the original using FFmpeg's psnr and ssim filters on yuv420p Y, one run
    over ``frames`` frames from ``start`` seconds."""
    info = probe(ffprobe, clip)
    w, h = info.width - info.width % (2 * scale), info.height - info.height % (2 * scale)
    methods = {b: f"scale=iw*{scale}:ih*{scale}:flags={b}" for b in ("bicubic", "lanczos")}
    for card in cards:
        methods[card.name] = render_graph([card], GraphOptions(backend=backend))
    n = len(methods)
    keys = [f"m{i}" for i in range(n)]
    parts = [f"[0:v]trim=end_frame={frames},crop={w}:{h}:0:0,format=yuv420p,split=2[hr][ref]",
             f"[hr]scale={w // scale}:{h // scale}:flags=bicubic,split={n}"
             + "".join(f"[lr{k}]" for k in keys),
             f"[ref]split={2 * n}" + "".join(f"[r{k}a][r{k}b]" for k in keys)]
    outs: list[str] = []
    for k, vf in zip(keys, methods.values(), strict=True):
        parts.append(f"[lr{k}]{vf},format=yuv420p[up{k}]")
        parts.append(f"[up{k}][r{k}a]psnr@{k}[p{k}];[p{k}][r{k}b]ssim@{k}[o{k}]")
        outs += ["-map", f"[o{k}]", "-f", "null", "-"]
    res = run_measured([str(ffmpeg), "-hide_banner", "-nostdin", "-v", "info", "-ss", str(start),
                        "-i", str(clip),
                        "-filter_complex", ";".join(parts), *outs])
    check_run(res, f"video quality on {clip.name}")
    scores = parse_quality_log(res.log)
    return [VideoScore(clip.name, name, scale, frames, *scores[k])
            for k, name in zip(keys, methods, strict=True) if k in scores]


# ---------------------------------------------------------------- worker side (its own process)


def _session(card: ModelCard) -> tuple[Any, str, str]:
    import onnxruntime as ort

    mf = card.file_for("onnx")
    sess = ort.InferenceSession(str(card.path_for("onnx")), providers=["CPUExecutionProvider"])
    return sess, mf.input, mf.output


def _rgb(card: ModelCard) -> bool:
    return card.file_for("onnx").channels == 3


def _prescale_vf(card: ModelCard) -> str | None:
    p = card.prescale
    return f"scale=iw*{p}:ih*{p}:flags=bicubic" if p > 1 else None


def _self_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _job_ceiling(a: dict[str, Any]) -> dict[str, Any]:
    card = find_card(a["card"])
    plain, src = Path(a["plain"]), Path(a["input"])
    w, h = a["width"] * card.prescale, a["height"] * card.prescale
    if _rgb(card):
        rgb = read_frames(plain, src, "rgb24", w, h, a["frames"], vf=_prescale_vf(card))
        xs = [np.ascontiguousarray(f.transpose(2, 0, 1)[None], np.float32) / 255 for f in rgb]
    else:
        ys = read_yuv420p_y(plain, src, w, h, a["frames"], vf=_prescale_vf(card))
        xs = [y[None, None].astype(np.float32) / 255 for y in ys]
    if not xs:
        raise FfsrError(f"no frames decoded from {src}")
    sess, inp, out = _session(card)
    sess.run([out], {inp: xs[0]})  # warm-up: first-run allocations are start-up, not steady state
    runs, started = 0, time.perf_counter()
    while runs < len(xs) or time.perf_counter() - started < a.get("min_seconds", 0.0):
        sess.run([out], {inp: xs[runs % len(xs)]})
        runs += 1
    seconds = time.perf_counter() - started
    return {"fps": runs / seconds, "runs": runs, "seconds": seconds, "preloaded": len(xs),
            "self_mb": _self_mb()}


def _wait_mb(proc: subprocess.Popen[bytes]) -> float:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise FfsrError(f"{proc.args!r} exited with {proc.returncode}")
    return usage.ru_maxrss / 1024


def _job_pipeline(a: dict[str, Any]) -> dict[str, Any]:
    """Decode pipe → reader thread (bytes → float tensor) → onnxruntime (main thread) →
    writer thread (float → bytes, chroma for Y models) → encode pipe. onnxruntime and
    numpy release the GIL, so the three overlap."""
    from PIL import Image

    card = find_card(a["card"])
    plain, n = a["plain"], a["frames"]
    rgb = _rgb(card)
    w, h = a["width"] * card.prescale, a["height"] * card.prescale
    s = card.model_scale
    ow, oh = w * s, h * s
    pix = "rgb24" if rgb else "yuv420p"
    cw, ch = (w + 1) // 2, (h + 1) // 2
    in_size = w * h * 3 if rgb else w * h + 2 * cw * ch
    dec_argv = [plain, "-v", "error", "-nostdin", "-i", a["input"]]
    if vf := _prescale_vf(card):
        dec_argv += ["-vf", vf]
    dec_argv += ["-frames:v", str(n), "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt",
                 pix, "-"]
    enc_argv = [plain, "-v", "error", "-nostdin", "-f", "rawvideo", "-pix_fmt", pix, "-s",
                f"{ow}x{oh}", "-r", "25", "-i", "-", "-f", "null", "-"]
    # Both ffmpegs start while the model loads, so neither start-up lands between frames.
    dec = subprocess.Popen(dec_argv, stdout=subprocess.PIPE)
    enc = subprocess.Popen(enc_argv, stdin=subprocess.PIPE)
    sess, inp, out_name = _session(card)
    assert dec.stdout is not None and enc.stdin is not None
    dec_out, enc_in = dec.stdout, enc.stdin
    to_model: queue.Queue[Any] = queue.Queue(maxsize=4)
    to_writer: queue.Queue[Any] = queue.Queue(maxsize=4)
    errors: list[BaseException] = []
    written: list[tuple[float, int]] = []

    def reader() -> None:
        try:
            while len(buf := dec_out.read(in_size)) == in_size:
                a8 = np.frombuffer(buf, np.uint8)
                if rgb:
                    x = np.ascontiguousarray(a8.reshape(h, w, 3).transpose(2, 0, 1)[None],
                                             np.float32) / 255
                    to_model.put((x, None))
                else:
                    y = a8[: w * h].reshape(1, 1, h, w).astype(np.float32) / 255
                    c = a8[w * h:].reshape(2, ch, cw)
                    to_model.put((y, c))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
        finally:
            to_model.put(None)

    def writer() -> None:
        try:
            while (item := to_writer.get()) is not None:
                y, chroma = item
                if rgb:
                    enc_in.write(to_8bit(y[0].transpose(1, 2, 0)).tobytes())
                else:
                    enc_in.write(to_8bit(y[0, 0]).tobytes())
                    for plane in chroma:
                        if s > 1:
                            plane = np.asarray(Image.fromarray(plane).resize(
                                ((ow + 1) // 2, (oh + 1) // 2), Image.Resampling.BICUBIC))
                        enc_in.write(plane.tobytes())
                written.append((time.monotonic(), len(written) + 1))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            enc_in.close()

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=writer,
                                                                              daemon=True)]
    for t in threads:
        t.start()
    try:
        while (item := to_model.get()) is not None:
            x, chroma = item
            to_writer.put((sess.run([out_name], {inp: x})[0], chroma))
    except BaseException:
        dec.kill()
        raise
    finally:
        to_writer.put(None)
        for t in threads:
            t.join(timeout=30)
    dec_mb, enc_mb = _wait_mb(dec), _wait_mb(enc)
    if errors:
        raise errors[0]
    return {"frames": len(written), "steady_fps": steady_fps(written), "self_mb": _self_mb(),
            "decoder_mb": dec_mb, "encoder_mb": enc_mb}


def _job_png(a: dict[str, Any]) -> dict[str, Any]:
    """Extract PNGs, upscale each with PIL + onnxruntime, save PNGs, read them back."""
    import resource

    from PIL import Image

    card = find_card(a["card"])
    plain = a["plain"]
    bicubic = Image.Resampling.BICUBIC
    with tempfile.TemporaryDirectory(prefix="ffsr-png-") as tmp:
        src, dst = Path(tmp, "in"), Path(tmp, "out")
        src.mkdir()
        dst.mkdir()
        t0 = time.monotonic()
        subprocess.run([plain, "-v", "error", "-nostdin", "-i", a["input"], "-frames:v",
                        str(a["frames"]), "-fps_mode", "passthrough", str(src / "%06d.png")],
                       check=True)
        t1 = time.monotonic()
        sess, inp, out = _session(card)
        infer = 0.0

        def run(x: np.ndarray) -> np.ndarray:
            nonlocal infer
            t = time.monotonic()
            y: np.ndarray = sess.run([out], {inp: np.ascontiguousarray(x)})[0]
            infer += time.monotonic() - t
            return y

        for png in sorted(src.glob("*.png")):
            img = Image.open(png)
            if _rgb(card):
                x = np.asarray(img.convert("RGB"), np.float32).transpose(2, 0, 1)[None] / 255
                result = Image.fromarray(to_8bit(run(x)[0].transpose(1, 2, 0)))
            else:
                ycc = img.convert("YCbCr")
                if card.prescale > 1:
                    ycc = ycc.resize((ycc.width * card.prescale, ycc.height * card.prescale),
                                     bicubic)
                yy, cb, cr = ycc.split()
                y_up = Image.fromarray(to_8bit(run(np.asarray(yy, np.float32)[None, None] / 255)
                                               [0, 0]))
                result = Image.merge("YCbCr", (y_up, cb.resize(y_up.size, bicubic),
                                               cr.resize(y_up.size, bicubic))).convert("RGB")
            result.save(dst / png.name)
        t2 = time.monotonic()
        subprocess.run([plain, "-v", "error", "-nostdin", "-framerate", "25", "-i",
                        str(dst / "%06d.png"), "-f", "null", "-"], check=True)
        t3 = time.monotonic()
        frames = len(list(dst.glob("*.png")))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"frames": frames, "extract_s": t1 - t0, "model_s": infer,
            "images_s": t2 - t1 - infer, "assemble_s": t3 - t2,
            "self_mb": _self_mb(), "children_mb": children}


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ceiling": _job_ceiling, "pipeline": _job_pipeline, "png": _job_png}


def _main(argv: Sequence[str]) -> None:
    job, args = argv
    print(json.dumps(JOBS[job](json.loads(args))))


if __name__ == "__main__":
    _main(sys.argv[1:])
