"""``--backend auto`` on the CPU: the fastest backend for this model chain on this machine,
measured once and cached.

No fixed order is right everywhere (benchmarks/results/cpu-peers-2026-12-03.md): on an AMD
EPYC without avx512/bf16, OpenVINO f32 runs realesr-animevideov3 at 1.3-1.4x ONNX Runtime's
speed but ESPCN at 0.7x; on a CPU with bf16 units OpenVINO wins everything. So when more
than one backend could run the chain, each runs it in ffsr's ffmpeg on synthetic 320x180
frames (testsrc2, the memory probe's chain graph) at the precision the job would ask for,
and the most frames per second wins. The probe size is small to keep the measurement short
(~3 s for ESPCN, ~10 s for realesr-animevideov3 here); the benchmark shows the same winner at
320x180 and 480x270 (realesr-animevideov3) as at 640x360 and 960x540 (ESPCN). Start-up and
model compilation do not count: the rate is taken from ffmpeg's ``-progress`` after the first
frames are out.

The record (``cache_dir()/backend-choice/``, JSON with the numbers) is keyed by the model
files' sha256 per backend, the ffmpeg binary, the CPU (model, the flags that change which
kernels run, usable cores) and the precisions, so a new build, model, CPU or precision is
measured again; an unreadable record is measured again too. A backend whose measurement
fails loses (the log says why); such a round is not cached.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import Capabilities, binary_identity
from ffsr.memory_probe import cache_file, chain_graph, chain_steps, synthetic_input, write_json
from ffsr.model_card import ModelCard
from ffsr.precision import cpu_flags, cpuinfo, resolve_precision
from ffsr.signals import die_with_parent
from ffsr.upscale_job import _first_error  # ffmpeg's log read as for a failed job

PROBE = (320, 180)
WARMUP_FRAMES = 2
"""Frames out before the clock starts: model load, compilation, first-request costs."""
WINDOW_S, MIN_FRAMES = 1.0, 4
"""Timed for at least this long and this many frames (an even count: OpenVINO's two streams
finish frames in pairs)."""
TIMEOUT_S = 120.0
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
                "amx_int8", "avx512_fp16", "amx_fp16")
"""CPU flags that change which kernels the runtimes pick, so which backend wins."""


def cpu_identity() -> list[object]:
    """What identifies this CPU for a speed record: model, kernel flags, usable cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [cpuinfo().get("model name", ""), sorted(cpu_flags() & set(KERNEL_FLAGS)), cores]


def usable(cards: Sequence[ModelCard], caps: Capabilities, order: Sequence[str],
           precision: str) -> dict[str, str | None]:
    """Backends in ``order`` that every card has a file for, the binary has, and that take
    ``precision``: each with the precision it would run."""
    runs: dict[str, str | None] = {}
    for name in order:
        if name in caps.dnn_backends and all(name in c.files for c in cards):
            try:
                runs[name] = resolve_precision(precision, name, "cpu", cards)
            except FfsrError:
                continue  # e.g. --precision bf16 on a backend that runs f32 only
    return runs


def record_path(cards: Sequence[ModelCard], runs: dict[str, str | None], ffmpeg: Path) -> Path:
    """The cached measurement of ``cards`` on the backends (and precisions) ``runs``."""
    backends = [[name, chain_steps(cards, name), prec] for name, prec in runs.items()]
    return cache_file("backend-choice", [backends, binary_identity(ffmpeg), cpu_identity(), PROBE])


def measure_fps(ffmpeg: Path, graph: str) -> float:
    """Frames per second of ``graph`` on PROBE-sized frames once the first WARMUP_FRAMES are
    out; FfsrError with ffmpeg's first error (the cause) when it fails."""
    argv = [str(ffmpeg), "-nostdin", "-v", "error", "-progress", "pipe:1", "-stats_period", "0.05",
            *synthetic_input(*PROBE), "-vf", graph, "-f", "null", "-"]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True,
                                preexec_fn=die_with_parent())
        timer = threading.Timer(TIMEOUT_S, proc.kill)
        timer.start()
        start: tuple[float, int] | None = None
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith("frame="):
                    continue
                now, frame = time.monotonic(), int(line[6:])
                if start is None:
                    start = (now, frame) if frame >= WARMUP_FRAMES else None
                elif now - start[0] >= WINDOW_S and frame - start[1] >= MIN_FRAMES:
                    return (frame - start[1]) / (now - start[0])
        finally:
            timer.cancel()
            proc.kill()
            proc.wait()
        err.seek(0)
        log = err.read().decode(errors="replace")
    raise FfsrError(_first_error(log) if log.strip() else
                    f"ffmpeg stopped (exit status {proc.returncode})")


def _cached_fps(path: Path, runs: dict[str, str | None]) -> dict[str, float] | None:
    """The record's numbers; None where there is none, it cannot be read or does not fit."""
    try:
        fps = {name: float(v) for name, v in json.loads(path.read_text())["fps"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return fps if set(fps) == set(runs) and all(v > 0 for v in fps.values()) else None


def fastest(fps: dict[str, float]) -> str:
    """The backend with the most frames per second (a tie: the first, the fixed order's)."""
    return max(fps, key=lambda name: fps[name])


def fastest_backend(cards: Sequence[ModelCard], ffmpeg: Path, caps: Capabilities,
                    order: Sequence[str], precision: str,
                    log: Callable[[str], None]) -> str | None:
    """The fastest of the usable backends, measured here once; None where fewer than two are
    usable or every measurement failed (the fixed order decides then)."""
    runs = usable(cards, caps, order, precision)
    if len(runs) < 2:
        return None
    size = "x".join(map(str, PROBE))
    path = record_path(cards, runs, ffmpeg)
    if (fps := _cached_fps(path, runs)) is not None:
        choice = fastest(fps)
        log(f"backend auto: {choice} (cached choice, measured on this CPU at {size}: "
            f"{_numbers(fps)})")
        return choice
    log(f"timing {' and '.join(runs)} on this CPU for --backend auto (once per model and build)…")
    fps, failed = {}, {}
    for name, prec in runs.items():
        try:
            fps[name] = measure_fps(ffmpeg, chain_graph(cards, name, prec))
        except FfsrError as e:
            failed[name] = e.message
    why = "; ".join(f"{name} failed: {reason}" for name, reason in failed.items())
    if not fps:
        log(f"backend auto: measuring on this CPU failed ({why}); taking the fixed order")
        return None
    choice = fastest(fps)
    if not failed:
        write_json(path, {"choice": choice, "size": size, "fps": {k: round(v, 3) for k, v in fps.items()},
                          "precision": runs, "models": [c.name for c in cards],
                          "ffmpeg": str(ffmpeg), "cpu": cpu_identity()})
    tail = f"; {why}; not cached" if failed else "; cached"
    log(f"backend auto: {choice} (measured once on this CPU at {size}: {_numbers(fps)}{tail})")
    return choice


def _numbers(fps: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.1f} fps" for name, value in
                     sorted(fps.items(), key=lambda kv: -kv[1]))
