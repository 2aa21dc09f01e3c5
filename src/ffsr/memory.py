"""Will the frame fit in memory? FFmpeg's DNN backends hold every activation of a whole
frame at once, and a frame that does not fit ends in the kernel's OOM killer mid-file, so
ffsr refuses it before any work, saying what it needs, what there is and what to do.

The need is a measured rule, not a guess: ffmpeg's peak RSS (ru_maxrss) for a model on a
backend is ``base + bytes per pixel of the model's input frame`` (docs/ffmpeg-dnn.md,
"Memory per frame"). ESPCN and realesr-animevideov3 have rules measured up to 1920x1080
(``MEASURED``); any other model or chain is measured on first use (ffsr.memory_probe)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.memory_probe import PROBES, measured_probes
from ffsr.model_card import ModelCard

MIB = 1 << 20
MARGIN = 1.1
"""On rules fitted from small probes: a 160x90/320x180 fit predicted 640x360..1920x1080
within 4 % for the models measured (docs/ffmpeg-dnn.md)."""


@dataclass(frozen=True)
class MemoryRule:
    base_mib: float
    bytes_per_pixel: float
    """Per pixel of the frame the model is fed (after any pre-scale)."""

    def need(self, pixels: int) -> int:
        return int(self.base_mib * MIB + self.bytes_per_pixel * pixels)


# Fitted to peak RSS of ffmpeg, 2 frames of testsrc2, CPU, f32 (docs/ffmpeg-dnn.md table).
MEASURED: dict[tuple[str, str], MemoryRule] = {
    ("espcn", "onnx"): MemoryRule(35, 937),
    ("espcn", "openvino"): MemoryRule(65, 862),
    ("realesr-animevideov3", "onnx"): MemoryRule(51, 1699),
    ("realesr-animevideov3", "openvino"): MemoryRule(87, 2227),
}


def available_bytes() -> int:
    """MemAvailable, or what the cgroup (a container's --memory) still allows if less."""
    avail = None
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            avail = int(line.split()[1]) * 1024
    limits = [avail] if avail else []
    try:
        cg_max = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        cg_cur = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if cg_max != "max":
            limits.append(int(cg_max) - cg_cur)
    except (OSError, ValueError):
        pass
    if not limits:
        return (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    return max(0, min(limits))


def estimate(cards: Sequence[ModelCard], backend: str, width: int, height: int) -> int | None:
    """Bytes ffmpeg needs for one model with a rule in ``MEASURED``; None for anything else."""
    if len(cards) != 1 or (rule := MEASURED.get((cards[0].name, backend))) is None:
        return None
    return rule.need(width * height * cards[0].prescale ** 2)


def probed_rule(probes: dict[str, int]) -> MemoryRule | None:
    """base + per pixel of the chain's input frame, through the two probes (None if fewer)."""
    points = sorted((_pixels(k), v) for k, v in probes.items())
    if len(points) < 2:
        return None
    (p0, m0), (p1, m1) = points[0], points[-1]
    per_pixel = max(0.0, (m1 - m0) / (p1 - p0))
    return MemoryRule((m0 - per_pixel * p0) / MIB, per_pixel)


def _pixels(size: str) -> int:
    w, h = size.split("x")
    return int(w) * int(h)


def measured_need(cards: Sequence[ModelCard], backend: str, precision: str | None,
                  ffmpeg: Path, width: int, height: int, have: int,
                  log: Callable[[str], None] = lambda _: None) -> int | None:
    """Bytes a chain without a seeded rule needs, measured once and cached: the whole chain
    runs in one ffmpeg where each step keeps its buffers, so its own peak is the rule. A frame
    no bigger than the largest probe is not measured (the probe would cost the run itself);
    the largest probe's bound (peak x pixel ratio) settles most frames; only a frame that
    bound does not clear gets the second probe and the fitted rule. None: not measurable."""
    pixels = width * height
    big_w, big_h = PROBES[0]
    if pixels <= big_w * big_h:
        return None
    probes = measured_probes(cards, backend, precision, ffmpeg, 1, log)
    if f"{big_w}x{big_h}" not in probes:
        return None
    bound = int(probes[f"{big_w}x{big_h}"] * pixels / (big_w * big_h) * MARGIN)
    if bound <= have:
        return bound
    rule = probed_rule(measured_probes(cards, backend, precision, ffmpeg, len(PROBES), log))
    return int(rule.need(pixels) * MARGIN) if rule else bound


def check_memory(cards: Sequence[ModelCard], backend: str, width: int, height: int,
                 available: int | None = None, *, ffmpeg: Path | None = None,
                 precision: str | None = None, log: Callable[[str], None] = lambda _: None) -> None:
    """Refuse, before any work, a frame whose need exceeds the memory available. With
    ``ffmpeg`` given, models without a seeded rule are measured (once); without, skipped."""
    have = available_bytes() if available is None else available
    need, how = estimate(cards, backend, width, height), "measured rule in docs/ffmpeg-dnn.md"
    if need is None and ffmpeg is not None:
        need = measured_need(cards, backend, precision, ffmpeg, width, height, have, log)
        how = "measured on this machine's ffmpeg"
    if need is not None and need > have:
        raise FfsrError(
            f"A {width}x{height} frame needs about {need / 2**30:.1f} GiB on the {backend} "
            f"backend ({' + '.join(c.name for c in cards)}, {how}) but "
            f"{have / 2**30:.1f} GiB is available: downscale the input first "
            "(e.g. ffmpeg -vf scale=iw/2:-2), or run on a machine with more memory.")
