"""The RIFE v4 model FFmpeg runs: ONE image [frame a | frame b | t-band] in, the frame at
time t between a and b out.

``dnn_processing`` feeds a model one 1x3xHxW tensor, so the graph puts the two frames and a
band side by side. The band carries t = k/q EXACTLY, as positions, because ffsr's minimal
FFmpeg has no filter that writes a computed colour (no geq) but overlay places a pixel at a
computed position: on black, one red pixel at the row-major index k and one green pixel at
index q (so the band needs H*W > q pixels; for 24000/1001 -> 60, q = 1001). The wrapper
reads them back with argmax. It pads to the multiple of 64 v4 needs (edge replication) and
crops back, and keeps HD v3's scene-cut rule (wrapper.py): across a cut it returns frame a.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ffsr_convert.rife.net_v4 import MULTIPLE, IFNetV4
from ffsr_convert.rife.wrapper import CUT_THRESHOLD, unless_cut


class TimedRIFE(nn.Module):
    """1x3xHx(3W) in [0,1] -> 1x3xHxW: RIFE v4's frame at t = k/q, or frame a across a cut."""

    def __init__(self, net: IFNetV4, cut_threshold: float = CUT_THRESHOLD) -> None:
        super().__init__()
        self.net = net
        self.cut_threshold = cut_threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        w = x.shape[3] // 3
        img0 = x[:, :, :, :w]
        img1 = x[:, :, :, w:2 * w]
        band = x[0, :2, :, 2 * w:].reshape(2, -1)
        k = torch.argmax(band[0]).to(x.dtype)
        q = torch.argmax(band[1]).to(x.dtype).clamp(min=1.0)
        pad = [0, (MULTIPLE - w % MULTIPLE) % MULTIPLE, 0, (MULTIPLE - h % MULTIPLE) % MULTIPLE]
        mid = self.net(F.pad(img0, pad, mode="replicate"), F.pad(img1, pad, mode="replicate"),
                       k / q)
        return unless_cut(img0, img1, mid[:, :, :h, :w], self.cut_threshold)


def timed_input(img0: torch.Tensor, img1: torch.Tensor, k: int, q: int) -> torch.Tensor:
    """The tensor the graph's pad + overlays make from two 1x3xHxW frames and t = k/q."""
    w = img0.shape[3]
    if not 0 <= k < q < img0.shape[2] * w:
        raise ValueError(f"t = {k}/{q} does not fit a {w}x{img0.shape[2]} band.")
    band = torch.zeros_like(img0)
    band[0, 0, k // w, k % w] = 1.0
    band[0, 1, q // w, q % w] = 1.0
    return torch.cat((img0, img1, band), dim=3)
