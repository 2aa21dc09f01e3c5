"""A model's memory rule measured on first use: the chain runs in ffsr's ffmpeg on one small
synthetic frame, and its peak RSS is the rule's evidence, cached per model files, backend,
precision and ffmpeg build, so each is measured once and ordinary runs pay nothing.

One probe (320x180) gives a conservative bound: peak x (frame pixels / probe pixels) is at
least ``base + per pixel x frame pixels`` for any frame bigger than the probe. Only when that
bound says the frame might not fit is a second probe (160x90) run to fit base and per-pixel
cost (docs/ffmpeg-dnn.md, "Memory per frame")."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ffsr.ffmpeg_tools import binary_identity
from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.model_card import ModelCard
from ffsr.paths import cache_dir
from ffsr.signals import die_with_parent

PROBES = ((320, 180), (160, 90))
"""Largest first: it alone gives the bound. ~0.2-1 s each for the zoo's models here."""

# Linux carries the parent's RSS high-water mark across fork+exec into the child's
# ru_maxrss, and a parent holding torch or TensorFlow is over 1 GB: ffmpeg is started from
# a small interpreter that reports its own child's peak.
# ffmpeg gets SIGKILL when the wrapper dies, and the wrapper when ffsr does (die_with_parent).
PEAK = """
import ctypes, os, signal, subprocess, sys
prctl = ctypes.CDLL(None).prctl
proc = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE,
                        preexec_fn=lambda: prctl(1, signal.SIGKILL))
_, status, usage = os.wait4(proc.pid, 0)
sys.exit(proc.stderr.read().decode()[-500:] if status else print(usage.ru_maxrss * 1024))
"""


def peak_rss(argv: Sequence[str], timeout: float = 300) -> int | None:
    """The command's own peak resident memory in bytes; None when it fails."""
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", PEAK, *argv],
                              capture_output=True, text=True, timeout=timeout,
                              preexec_fn=die_with_parent())
    except subprocess.TimeoutExpired:
        return None
    return int(proc.stdout) if proc.returncode == 0 else None


def synthetic_input(width: int, height: int) -> list[str]:
    """ffmpeg input arguments for testsrc2 frames: no file to read, as fast as they are pulled."""
    return ["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r=25"]


def probe_argv(ffmpeg: Path, graph: str, width: int, height: int) -> list[str]:
    """One synthetic frame through ``graph``, nothing written."""
    return [str(ffmpeg), "-nostdin", "-v", "error", *synthetic_input(width, height),
            "-frames:v", "1", "-vf", graph, "-f", "null", "-"]


def chain_graph(cards: Sequence[ModelCard], backend: str, precision: str | None) -> str:
    """The models alone, as ffsr runs them on the CPU."""
    return render_graph(cards, GraphOptions(backend=backend, device="cpu", precision=precision))


def chain_steps(cards: Sequence[ModelCard], backend: str) -> list[tuple[str, int, int, str]]:
    """What a cache key says of a chain: the files' sha256 say which models, not their names."""
    return [(c.file_for(backend).sha256, c.prescale, c.model_scale, c.color) for c in cards]


def cache_file(folder: str, key: object) -> Path:
    """``cache_dir()/folder/<hash of key>.json``: one file per key (key: JSON-able)."""
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]
    return cache_dir() / folder / f"{digest}.json"


def rule_path(cards: Sequence[ModelCard], backend: str, precision: str | None,
              ffmpeg: Path) -> Path:
    """Cache file of a chain's probes."""
    return cache_file("memory", [chain_steps(cards, backend), backend, precision,
                                 binary_identity(ffmpeg), PROBES])


def _read(path: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def write_json(path: Path, value: object) -> None:
    """Atomically (a reader sees the old file or the new one, never half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value) + "\n")
    os.replace(tmp, path)


def measured_probes(cards: Sequence[ModelCard], backend: str, precision: str | None,
                    ffmpeg: Path, count: int, log: Callable[[str], None]) -> dict[str, int]:
    """Peak RSS at the first ``count`` probe sizes ({"WxH": bytes}), measured where not cached
    yet; a probe that fails (the model cannot run there) is left out."""
    path = rule_path(cards, backend, precision, ffmpeg)
    probes = _read(path)
    todo = [(w, h) for w, h in PROBES[:count] if f"{w}x{h}" not in probes]
    if not todo:
        return probes
    names = " + ".join(c.name for c in cards)
    log(f"measuring the memory {names} needs on {backend} (once)…")
    graph = chain_graph(cards, backend, precision)
    for w, h in todo:
        peak = peak_rss(probe_argv(ffmpeg, graph, w, h))
        if peak is None:
            return probes
        probes[f"{w}x{h}"] = peak
    write_json(path, probes)
    return probes
