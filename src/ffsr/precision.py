"""Inference precision: what `--precision auto|f32|bf16` means on this CPU.

bf16 halves the work on CPUs with bf16 units (avx512_bf16, AMX) at ~57 dB PSNR against
f32 on 8-bit frames (measured, see docs/ffmpeg-dnn.md); elsewhere it is emulated and
slower, so ``auto`` takes it only where the CPU has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from ffsr.backends import get_backend
from ffsr.errors import FfsrError
from ffsr.model_card import ModelCard

PRECISIONS = ("auto", "f32", "bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpuinfo(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where it is not readable)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is not readable)."""
    return frozenset(cpuinfo().get("flags", "").split())


def cpu_has_bf16() -> bool:
    return any(flag in cpu_flags() for flag in BF16_FLAGS)


def bf16_failed(cards: Sequence[ModelCard], backend: str) -> list[str]:
    """Models whose conversion found bf16 below the bar (``ffmpeg_bf16`` on the card): for
    them ``auto`` stays f32. Cards converted on a CPU without bf16 have no such check."""
    return [c.name for c in cards if backend in c.files
            and c.files[backend].fidelity.get("ffmpeg_bf16", {}).get("passes") is False]


def resolve_precision(requested: str, backend: str, device: str = "cpu",
                      cards: Sequence[ModelCard] = ()) -> str | None:
    """The precision to ask the backend for, or None where the backend has no such choice
    (ONNX Runtime, LibTorch and TensorFlow run the model's own f32)."""
    if requested not in PRECISIONS:
        raise FfsrError(f"Unknown precision '{requested}'; choose one of: {', '.join(PRECISIONS)}.")
    if get_backend(backend).precision_option is None:
        if requested == "bf16":
            raise FfsrError(f"The {backend} backend runs f32 only; use --backend openvino for bf16.")
        return None
    if requested == "bf16" and device == "cpu" and not cpu_has_bf16():
        raise FfsrError("--precision bf16 needs a CPU with bf16 units (avx512_bf16 or AMX), "
                        "which this one lacks; use --precision f32.")
    if requested == "auto":
        bf16 = device == "cpu" and cpu_has_bf16() and not bf16_failed(cards, backend)
        return "bf16" if bf16 else "f32"
    return requested
