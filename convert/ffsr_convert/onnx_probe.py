"""Probing a user's ONNX file on several frame sizes: the scale it applies, the size multiple
it needs and the output pixels it loses at the edges are measured, not read from metadata
(which old exports leave vague), and each failure is refused in one sentence instead of an
onnxruntime traceback."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffsr.errors import FfsrError

# A model needing sizes divisible by m fails (or changes its scale) on odd multiples of m.
MULTIPLES = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class OnnxShape:
    """What the probe measured: output = scale·input − border, inputs multiples of ``multiple``."""

    scale: int
    multiple: int
    border: int


@dataclass(frozen=True)
class Probe:
    size: tuple[int, int]
    out: tuple[int, ...] | None
    error: str = ""


def _first_line(e: BaseException) -> str:
    """onnxruntime's reason, short: the failing operator when it names one."""
    text = str(e).strip()
    if op := re.search(r"while running (\S+) node", text):
        return f"its {op.group(1)} operator fails"
    lines = re.sub(r"^\[ONNXRuntimeError\][^:]*:[^:]*:[^:]*: ", "", text).splitlines()
    return (lines[0] if lines else type(e).__name__).rstrip(".")[:160]


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # probes fail on purpose; the refusal says why, once
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise FfsrError(f"onnxruntime cannot load {path}: {_first_line(e)}.") from e


def _run(sess: Any, input_name: str, channels: int, h: int, w: int) -> Probe:
    x = np.random.default_rng(0).random((1, channels, h, w), dtype=np.float32)
    try:
        out = sess.run(None, {input_name: x})[0]
    except Exception as e:
        return Probe((h, w), None, _first_line(e))
    return Probe((h, w), tuple(int(d) for d in np.shape(out)))


def _sizes(m: int) -> list[tuple[int, int]]:
    """Three sizes in steps of ``m``, starting on an odd multiple of ``m`` (at least 32x48)."""
    q, r = -(-32 // m) | 1, max(-(-48 // m) | 1, (-(-32 // m) | 1) + 2)
    return [((q + i) * m, (r + i) * m) for i in range(3)]


def _fit(probes: list[Probe], channels: int) -> tuple[int, int] | None:
    """(scale, border) when every probe gives channels x (s·h − b) x (s·w − b), else None."""
    if any(p.out is None or len(p.out) != 4 or p.out[1] != channels for p in probes):
        return None
    h0, h1 = probes[0].size[0], probes[1].size[0]
    o0, o1 = probes[0].out, probes[1].out
    assert o0 is not None and o1 is not None
    s, rem = divmod(o1[2] - o0[2], h1 - h0)
    if rem or s < 1:
        return None
    border = s * h0 - o0[2]
    for p in probes:
        assert p.out is not None
        (h, w), (oh, ow) = p.size, p.out[2:]
        if (oh, ow) != (s * h - border, s * w - border):
            return None
    return s, border


def probe_onnx(path: Path, channels: int, input_name: str) -> OnnxShape:
    """Measure the model or refuse it in one sentence; never lets onnxruntime's errors out."""
    sess = _session(path)
    tried: list[Probe] = []
    for m in MULTIPLES:
        probes = [_run(sess, input_name, channels, h, w) for h, w in _sizes(m)]
        tried += probes
        fit = _fit(probes, channels)
        if fit is None:
            continue
        return OnnxShape(fit[0], m, fit[1])
    ran = [p for p in tried if p.out is not None]
    if not ran:
        p = tried[0]
        raise FfsrError(f"onnxruntime cannot run {path} on a {p.size[0]}x{p.size[1]} frame (nor on "
                        f"any size up to multiples of {MULTIPLES[-1]}): {p.error}.")
    wrong = [p for p in ran if p.out is None or len(p.out) != 4 or p.out[1] != channels]
    if wrong:
        p = wrong[0]
        raise FfsrError(f"{path} maps 1x{channels}x{p.size[0]}x{p.size[1]} to {p.out}: not an "
                        "image with the same channels, which FFmpeg needs.")
    seen = ", ".join(list(dict.fromkeys(f"{p.size[0]}x{p.size[1]}→{p.out[2]}x{p.out[3]}"
                                        for p in ran if p.out))[:3])
    raise FfsrError(f"{path}'s output size is not one integer scale of its input size ({seen}), "
                    "so FFmpeg cannot run it frame by frame.")

