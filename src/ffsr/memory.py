"""Will the frame fit in memory? FFmpeg's DNN backends hold every activation of a whole
frame at once, and a frame that does not fit ends in the kernel's OOM killer mid-file, so
ffsr refuses it before any work, saying what it needs, what there is and what to do.

The need is a measured rule, not a guess: ffmpeg's peak RSS (ru_maxrss) for a model on a
backend is ``base + bytes per pixel of the model's input frame`` (docs/ffmpeg-dnn.md,
"Memory per frame"). Models without a measured rule are not checked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.model_card import ModelCard

MIB = 1 << 20


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
    """Bytes ffmpeg needs for the measured models of the chain (each keeps its own memory:
    they run side by side in one process); None when none of them is measured."""
    total, known, pixels = 0, False, width * height
    for card in cards:
        pixels *= card.prescale ** 2
        rule = MEASURED.get((card.name, backend))
        if rule:
            total, known = total + rule.need(pixels), True
        pixels *= card.model_scale ** 2
    return total if known else None


def check_memory(cards: Sequence[ModelCard], backend: str, width: int, height: int,
                 available: int | None = None) -> None:
    need = estimate(cards, backend, width, height)
    have = available_bytes() if available is None else available
    if need is not None and need > have:
        raise FfsrError(
            f"A {width}x{height} frame needs about {need / 2**30:.1f} GiB on the {backend} "
            f"backend ({' + '.join(c.name for c in cards)}, measured rule in "
            f"docs/ffmpeg-dnn.md) but {have / 2**30:.1f} GiB is available: downscale the "
            "input first (e.g. ffmpeg -vf scale=iw/2:-2), or run on a machine with more memory.")
