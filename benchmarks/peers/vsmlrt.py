"""ffsr against vs-mlrt and the bare runtimes, path by path (issue 9).

Every path reads the same lossless input (a y4m of the first N frames, made once per size)
and runs the same ONNX file (the card's ``.onnx``), each in its own process(es):

- ``ffsr <backend> [precision]``: the graph ``ffsr upscale`` renders, one ffmpeg process,
  ``-f null``; one variant per DNN backend the binary has and the model supports, and per
  precision the OpenVINO backend offers (read from ``ffmpeg -h filter=dnn_processing``);
- ``vs-mlrt ov`` / ``vs-mlrt ort``: upscale.vpy with ``core.ov.Model`` / ``core.ort.Model``
  at their defaults, frames pulled as vspipe pulls them (worker.py in the peer venv);
- ``ORT alone`` / ``OpenVINO alone``: the runtime on preloaded frames, one synchronous
  request at a time; OpenVINO at its default precision (bf16 on CPUs with bf16 units)
  and at f32.

Plus the two whole-job timings: ``ffsr upscale`` against ``vspipe | ffmpeg`` encoding the
same clip to .mp4 (same encoder settings), and ffsr's start-up overhead over the bare
ffmpeg command of the same graph (``ffsr graph --command``).
"""

from __future__ import annotations

import json
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ffsr import bench
from ffsr.backends import BACKENDS
from ffsr.bench import Measurement, Tools
from ffsr.encoding import encoder_args, output_kind
from ffsr.errors import FfsrError
from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.media import probe
from ffsr.model_card import ModelCard
from ffsr.precision import resolve_precision
from peers.peer_env import PeerEnv

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
SCRIPT = HERE / "upscale.vpy"
PRECISION_ORDER = ("f32", "bf16")
"""OpenVINO precisions timed when the backend offers them (f16 compiles as bf16 on CPUs)."""
COLUMN_ORDER = ("onnx", "openvino", "torch", "tensorflow")
RAN_PRECISION = re.compile(r"inference precision (\w+)", re.I)


@dataclass(frozen=True)
class Variant:
    """One ffsr column: a DNN backend and, where the backend has the option, a precision."""

    backend: str
    precision: str | None = None
    option: str = "precision"
    streams: int | None = None
    """OpenVINO streams when not ffsr's default (backends.py), to back the default's rule."""

    @property
    def label(self) -> str:
        return (f"ffsr {self.backend}" + (f" {self.precision}" if self.precision else "")
                + (f" {self.streams} stream" if self.streams else ""))

    def backend_options(self) -> tuple[tuple[str, str], ...]:
        return (((self.option, self.precision),) if self.precision else ()) + (
            (("num_streams", str(self.streams)), ("nireq", str(self.streams)))
            if self.streams else ())


def openvino_precisions(help_text: str) -> tuple[str | None, tuple[str, ...]]:
    """(option name, precisions) of the OpenVINO backend's precision option in
    ``ffmpeg -h filter=dnn_processing`` output; (None, ()) when it has none (FFmpeg 9.0.2
    as released passes no properties to OpenVINO)."""
    block = help_text.partition("dnn_openvino AVOptions:")[2]
    block = re.split(r"^\S.*AVOptions:", block, maxsplit=1, flags=re.M)[0]
    lines = block.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s+)-?(\w*precision\w*)\s+<", line)
        if not m:
            continue
        consts = []  # an enum option lists its values below it, indented further
        for nxt in lines[i + 1:]:
            c = re.match(r"^(\s+)(\w+)\s", nxt)
            if not c or len(c.group(1)) <= len(m.group(1)):
                break
            consts.append(c.group(2))
        named = consts or re.findall(r"\b(f32|bf16|f16)\b", line)
        return m.group(2), tuple(p for p in PRECISION_ORDER if p in named)
    return None, ()


def ffsr_variants(tools: Tools, card: ModelCard, dnn_backends: Sequence[str],
                  wanted: Sequence[str] | None = None) -> list[Variant]:
    """Every backend the binary has and the model has a file for (``wanted`` narrows),
    OpenVINO once per precision it offers."""
    help_text = subprocess.run([str(tools.ffmpeg), "-hide_banner", "-h", "filter=dnn_processing"],
                               capture_output=True, text=True).stdout
    out = []
    order = [b for b in COLUMN_ORDER if b in BACKENDS] + [b for b in BACKENDS
                                                          if b not in COLUMN_ORDER]
    for name in order:
        if name not in dnn_backends or (wanted and name not in wanted):
            continue
        if name == "openvino":
            option, precisions = openvino_precisions(help_text)
            out += ([Variant(name, p, option) for p in precisions] if option and precisions
                    else [Variant(name)])
            # one stream (both cores on one frame, as vs-mlrt runs) at the CPU's own precision
            auto = resolve_precision("auto", name)
            if option and auto in precisions:
                out.append(Variant(name, auto, option, streams=1))
        elif name in card.files:
            out.append(Variant(name))
    return out


def make_y4m(ffmpeg: Path, src: Path, dst: Path, width: int, height: int, frames: int,
             start: float) -> Path:
    """The first ``frames`` frames from ``start`` s, bicubic to the size, lossless y4m."""
    argv = [str(ffmpeg), "-v", "error", "-y", "-nostdin", "-ss", str(start), "-i", str(src),
            "-an", "-vf", f"scale={width}:{height}:flags=bicubic,format=yuv420p",
            "-frames:v", str(frames), "-f", "yuv4mpegpipe", str(dst)]
    res = bench.run_measured(argv)
    if res.returncode != 0 or not dst.exists():
        raise FfsrError(f"could not make {dst.name}: {res.log[-300:]}")
    return dst


def measure_ffsr(tools: Tools, clip: Path, card: ModelCard, frames: int,
                 variant: Variant) -> Measurement:
    """ffsr's graph for this backend/precision in one ffmpeg process, -f null."""
    graph = render_graph([card], GraphOptions(backend=variant.backend, in_label="0:v:0",
                                              out_label="vout",
                                              backend_options=variant.backend_options()))
    m, res = bench.measure_graph(tools.ffmpeg, clip, graph, frames, "ffsr",
                                 variant.label.removeprefix("ffsr "))
    ran = RAN_PRECISION.search(res.log)
    return replace(m, detail=f"ran {ran.group(1)}") if ran else m


def _worker(peer: PeerEnv, job: str, args: dict[str, Any]) -> tuple[bench.ProcResult, dict[str, Any]]:
    res = bench.run_measured([str(peer.python), str(WORKER), job, json.dumps(args)], env=peer.env)
    bench.check_run(res, f"peer {job} {args.get('runtime', '')}".strip())
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise FfsrError(f"peer {job} printed no result: {res.log[-300:]}")
    return res, json.loads(lines[-1])


def script_args(clip: Path, card: ModelCard, runtime: str, out: str) -> dict[str, str]:
    if card.prescale != 1:
        raise FfsrError(f"{card.name} needs a bicubic pre-scale; the peer script has none.")
    mf = card.file_for("onnx")
    return {"source": str(clip), "network": str(card.path_for("onnx")),
            "channels": str(mf.channels), "runtime": runtime, "scale": str(card.model_scale),
            "out": out}


def measure_vsmlrt(peer: PeerEnv, clip: Path, card: ModelCard, frames: int,
                   runtime: str) -> Measurement:
    """vs-mlrt (``ov`` or ``ort``) at its defaults; output the format ffsr's graph gives."""
    args = {**script_args(clip, card, runtime, "native"), "frames": str(frames)}
    res, out = _worker(peer, "vs", args)
    stamps = [(t, n) for t, n in out["stamps"]]
    return Measurement(f"vs-mlrt {runtime}", runtime, out["frames"], res.wall_s,
                       bench.steady_fps(stamps), res.maxrss_mb,
                       f"{out['threads']} VapourSynth threads, {out['format']}")


def measure_alone(peer: PeerEnv, tools: Tools, clip: Path, card: ModelCard, frames: int,
                  runtime: str, precision: str | None = None) -> Measurement:
    """ONNX Runtime (``ort``) or OpenVINO (``ov``) alone on preloaded frames."""
    info = probe(tools.ffprobe, clip)
    args = {"runtime": runtime, "precision": precision, "network": str(card.path_for("onnx")),
            "source": str(clip), "frames": frames, "channels": card.file_for("onnx").channels,
            "width": info.width, "height": info.height, "ffmpeg": str(tools.plain)}
    res, out = _worker(peer, "alone", args)
    name = "ORT alone" if runtime == "ort" else ("OpenVINO alone " + (precision or "default"))
    return Measurement(name, runtime, out["runs"], out["seconds"], out["fps"], out["self_mb"],
                       out["precision"])


def peer_versions(peer: PeerEnv) -> dict[str, Any]:
    return _worker(peer, "versions", {})[1]


def ffsr_cli() -> list[str]:
    """`ffsr` as a user runs it: the console script next to this Python, else -m ffsr."""
    script = Path(sys.executable).parent / "ffsr"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ffsr"]


@dataclass(frozen=True)
class EndToEnd:
    model: str
    size: tuple[int, int]
    frames: int
    ffsr_s: float
    ffsr_path: str
    """Backend (and precision) `ffsr upscale` chose, read from its --dry-run command."""
    peer_s: float
    psnr_y: float | None
    """PSNR of Y between the two outputs: the peer runs the same model on the same pixels."""
    encoder: str
    repeats: int = 1
    ffsr_median_s: float = 0.0
    peer_median_s: float = 0.0


def _chosen(command: str) -> str:
    backend = re.search(r"dnn_backend=(\w+)", command)
    precision = re.search(r"[:=]precision=(\w+)", command)
    return " ".join(m.group(1) for m in (backend, precision) if m) or "?"


def psnr_y(ffmpeg: Path, a: Path, b: Path) -> float | None:
    res = bench.run_measured([str(ffmpeg), "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b),
                              "-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"])
    m = re.search(r"PSNR y:([\d.]+|inf)", res.log)
    return float(m.group(1)) if m and res.returncode == 0 else None


def end_to_end(tools: Tools, peer: PeerEnv, clip: Path, card: ModelCard, size: tuple[int, int],
               frames: int, tmp: Path, repeats: int = 1) -> EndToEnd:
    """`ffsr upscale clip -o x.mp4` against `vspipe -c y4m upscale.vpy - | ffmpeg ... y.mp4`
    (vs-mlrt ov, the plain ffmpeg, ffsr's .mp4 encoder settings), wall clock each; best of
    ``repeats`` interleaved rounds, as the throughput columns (one 3-second job varies by
    ±0.3 s from run to run on a shared 2-core VM)."""
    out_ffsr, out_peer = tmp / f"e2e_ffsr_{card.name}.mp4", tmp / f"e2e_vsmlrt_{card.name}.mp4"
    up = ffsr_cli() + ["upscale", str(clip), "-m", card.name, "-o", str(out_ffsr), "--overwrite"]
    dry = subprocess.run(up + ["--dry-run"], capture_output=True, text=True)
    chosen = _chosen(dry.stdout)
    enc = encoder_args(output_kind(out_peer), None, None, None, False, frozenset({"libx264"}))
    vspipe = [str(peer.vspipe), "-c", "y4m", str(SCRIPT), "-"]
    for k, v in script_args(clip, card, "ov", "yuv420p").items():
        vspipe += ["-a", f"{k}={v}"]
    encode = [str(tools.plain), "-hide_banner", "-v", "error", "-nostdin", "-y",
              "-f", "yuv4mpegpipe", "-i", "-", *enc, str(out_peer)]
    ffsr_s: list[float] = []
    peer_s: list[float] = []
    for _ in range(repeats):
        res = bench.run_measured(up)
        bench.check_run(res, "ffsr upscale")
        ffsr_s.append(res.wall_s)
        peer_s.append(_vspipe_encode(vspipe, encode, peer))
    return EndToEnd(card.name, size, frames, min(ffsr_s), chosen, min(peer_s),
                    psnr_y(tools.ffmpeg, out_ffsr, out_peer), " ".join(enc), repeats,
                    statistics.median(ffsr_s), statistics.median(peer_s))


def _vspipe_encode(vspipe: list[str], encode: list[str], peer: PeerEnv) -> float:
    """Wall seconds of `vspipe ... | ffmpeg ...`, both started as a shell pipe starts them."""
    started = time.monotonic()
    src = subprocess.Popen(vspipe, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=peer.env)
    sink = subprocess.Popen(encode, stdin=src.stdout, stderr=subprocess.PIPE)
    assert src.stdout is not None
    src.stdout.close()  # the encoder holds the pipe; vspipe sees EPIPE if it dies
    _, sink_err = sink.communicate()
    _, src_err = src.communicate()
    seconds = time.monotonic() - started
    if src.returncode or sink.returncode:
        raise FfsrError(f"vspipe | ffmpeg failed ({src.returncode}, {sink.returncode}): "
                        f"{(src_err + sink_err).decode(errors='replace')[-400:]}")
    return seconds


@dataclass(frozen=True)
class Startup:
    model: str
    size: tuple[int, int]
    upscale_s: float
    bare_s: float
    repeats: int

    @property
    def overhead_s(self) -> float:
        return self.upscale_s - self.bare_s


def startup(clip: Path, card: ModelCard, size: tuple[int, int], tmp: Path,
            repeats: int = 3) -> Startup:
    """`ffsr upscale` of a 2-frame clip against the ffmpeg command `ffsr graph --command`
    prints for it, run as a user would paste it; best of ``repeats`` interleaved runs."""
    cli = ffsr_cli()
    printed = subprocess.run(cli + ["graph", "-m", card.name, "--command", "-i", str(clip),
                                    "-o", str(tmp / "startup_bare.mp4")],
                             capture_output=True, text=True)
    lines = [ln for ln in printed.stdout.splitlines() if ln.strip()]
    if printed.returncode != 0 or not lines:
        raise FfsrError(f"ffsr graph --command failed: {printed.stderr[-300:]}")
    bare = shlex.split(lines[-1])
    up = cli + ["upscale", str(clip), "-m", card.name, "-o", str(tmp / "startup_ffsr.mp4"),
                "--overwrite"]
    ups: list[float] = []
    bares: list[float] = []
    for _ in range(repeats):
        for argv, times in ((up, ups), (bare, bares)):
            res = bench.run_measured(argv)
            bench.check_run(res, shlex.join(argv[:3]))
            times.append(res.wall_s)
    return Startup(card.name, size, min(ups), min(bares), repeats)
