"""The model FFmpeg runs: ONE image holding frame n (left) and frame n+1 (right) in, the
frame halfway between them out.

FFmpeg 9's ``dnn_processing`` feeds a model exactly one frame as one 1x3xHxW tensor, so
the graph puts the two frames side by side (pad + overlay) and this wrapper splits them
again. It also pads to the multiple of 32 IFNet needs (zeros, as RIFE's own inference
script pads) and crops back, and it applies the scene-cut rule: across a hard cut there is
no motion to interpolate, only two unrelated pictures to blend, so the wrapper returns
frame n unchanged instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ffsr_convert.rife.net import MULTIPLE, IFNetHDv3

CUT_THRESHOLD = 0.2
"""Mean absolute difference (RGB in [0,1]) above which two frames count as a scene cut.
Measured (docs/interpolation.md): consecutive frames of the shared clips stay below 0.05
(0.07 two frames apart), a Set14 picture panned by 8/16 pixels gives 0.13/0.17, a cut
between two unrelated pictures 0.23-0.44. Fast pans must stay below it: they are where
RIFE gains most over minterpolate."""


class SideBySideRIFE(nn.Module):
    """1x3xHx(2W) in [0,1] -> 1x3xHxW: RIFE's middle frame, or frame n across a cut."""

    def __init__(self, net: IFNetHDv3, cut_threshold: float = CUT_THRESHOLD) -> None:
        super().__init__()
        self.net = net
        self.cut_threshold = cut_threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        w = x.shape[3] // 2
        img0 = x[:, :, :, :w]
        img1 = x[:, :, :, w:]
        pad_h = (MULTIPLE - h % MULTIPLE) % MULTIPLE
        pad_w = (MULTIPLE - w % MULTIPLE) % MULTIPLE
        mid = self.net(F.pad(img0, [0, pad_w, 0, pad_h]), F.pad(img1, [0, pad_w, 0, pad_h]))
        return unless_cut(img0, img1, mid[:, :, :h, :w], self.cut_threshold)


def unless_cut(img0: torch.Tensor, img1: torch.Tensor, mid: torch.Tensor,
               threshold: float) -> torch.Tensor:
    """The interpolated frame, clamped to [0,1]; across a scene cut (mean difference above
    ``threshold``) frame a itself, so nothing is blended across it."""
    cut = ((img0 - img1).abs().mean() > threshold).to(img0.dtype)
    return img0 * cut + mid.clamp(0.0, 1.0) * (1.0 - cut)


def side_by_side(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
    """The tensor the graph's pad + overlay makes from two 1x3xHxW frames."""
    return torch.cat((img0, img1), dim=3)
