"""Export the RIFE wrappers (HD v3 side by side, v4 with its t-band) to ONNX and check them
against PyTorch.

GridSample needs opset 16 or later; height and width stay dynamic (the wrapper reads
every size from its input), which ``check_onnx`` proves by running two unrelated sizes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ffsr_convert.rife.net import load_hdv3
from ffsr_convert.rife.net_v4 import load_v4
from ffsr_convert.rife.timed import TimedRIFE, timed_input
from ffsr_convert.rife.wrapper import SideBySideRIFE, side_by_side

ONNX_OPSET = 17
CHECK_SIZES = ((144, 176), (72, 100))
"""Frame sizes (H, W) the export is checked at: one not a multiple of 32, one odd-shaped."""


@dataclass(frozen=True)
class Fidelity:
    """ONNX Runtime against PyTorch on the same input, in 8-bit levels."""

    max_levels: float
    within_one_level: float
    """Fraction of output values within one 8-bit level."""


def build_wrapper(checkpoint: Path) -> SideBySideRIFE:
    return SideBySideRIFE(load_hdv3(checkpoint)).eval()


def build_timed(checkpoint: Path) -> TimedRIFE:
    return TimedRIFE(load_v4(checkpoint)).eval()


CHECK_T = ((1, 2), (400, 1001))
"""Timesteps (k, q) the v4 export is checked at, one per CHECK_SIZES entry."""


def export_onnx(module: nn.Module, path: Path) -> None:
    """1x3xHx(2W) (HD v3) or 1x3xHx(3W) (v4) float32 ``x`` -> 1x3xHxW ``y``, dynamic H and W."""
    a, b = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    sample = timed_input(a, b, 1, 2) if isinstance(module, TimedRIFE) else side_by_side(a, b)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (sample,), str(path), dynamo=False, opset_version=ONNX_OPSET,
            input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {2: "height", 3: "width_in"}, "y": {2: "height", 3: "width"}},
        )


def _pair(h: int, w: int, seed: int, timed: bool = False) -> torch.Tensor:
    """Two smooth random frames, the second shifted by two pixels (motion well below the
    scene-cut threshold, so the check runs the network, not the cut rule); for v4 with the
    t-band of CHECK_T[seed]."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g),
                                           size=(h + 8, w + 8), mode="bicubic",
                                           align_corners=False).clamp(0, 1)
    a, b = base[:, :, 4:4 + h, 4:4 + w], base[:, :, 3:3 + h, 6:6 + w]
    return timed_input(a, b, *CHECK_T[seed]) if timed else side_by_side(a, b)


def check_onnx(module: nn.Module, path: Path) -> Fidelity:
    """Run the ONNX file with onnxruntime at CHECK_SIZES; compare with the module."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst, within = 0.0, 1.0
    for i, (h, w) in enumerate(CHECK_SIZES):
        x = _pair(h, w, seed=i, timed=isinstance(module, TimedRIFE))
        with torch.no_grad():
            want = module(x).numpy()
        got = sess.run(["y"], {"x": x.numpy()})[0]
        if got.shape != want.shape:
            raise RuntimeError(f"RIFE ONNX export gives {got.shape} at {h}x{w}, "
                               f"PyTorch {want.shape}: the sizes did not stay dynamic.")
        diff = np.abs(got - want) * 255
        worst = max(worst, float(diff.max()))
        within = min(within, float((diff <= 1.0).mean()))
    return Fidelity(max_levels=worst, within_one_level=within)
