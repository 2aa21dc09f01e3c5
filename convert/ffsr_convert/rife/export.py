"""Export the side-by-side RIFE wrapper to ONNX and check it against PyTorch.

GridSample needs opset 16 or later; height and width stay dynamic (the wrapper reads
every size from its input), which ``check_onnx`` proves by running two unrelated sizes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ffsr_convert.rife.net import load_hdv3
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


def export_onnx(module: SideBySideRIFE, path: Path) -> None:
    """1x3xHx2W float32 ``x`` -> 1x3xHxW ``y``, dynamic H and W."""
    sample = side_by_side(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (sample,), str(path), dynamo=False, opset_version=ONNX_OPSET,
            input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {2: "height", 3: "width2"}, "y": {2: "height", 3: "width"}},
        )


def _pair(h: int, w: int, seed: int) -> torch.Tensor:
    """Two smooth random frames, the second shifted by two pixels (motion well below the
    scene-cut threshold, so the check runs the network, not the cut rule)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g),
                                           size=(h + 8, w + 8), mode="bicubic",
                                           align_corners=False).clamp(0, 1)
    return side_by_side(base[:, :, 4:4 + h, 4:4 + w], base[:, :, 3:3 + h, 6:6 + w])


def check_onnx(module: SideBySideRIFE, path: Path) -> Fidelity:
    """Run the ONNX file with onnxruntime at CHECK_SIZES; compare with the module."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst, within = 0.0, 1.0
    for i, (h, w) in enumerate(CHECK_SIZES):
        x = _pair(h, w, seed=i)
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
