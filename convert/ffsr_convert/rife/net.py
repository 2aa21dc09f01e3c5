"""RIFE HD v3's IFNet: three coarse-to-fine flow blocks, backward warping, a blend mask.

Written for export: every size is read from the tensors at run time (no Python-side
constants, no cached grids), so the traced ONNX graph keeps dynamic height and width.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SCALES = (4.0, 2.0, 1.0)
"""Working resolution of each block (1/4, 1/2, full), as RIFE runs at scale 1.0."""
MULTIPLE = 32
"""Height and width must be multiples of this (the first block works at 1/4 size and its
encoder halves twice more)."""


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))


class _Pair(nn.Sequential):
    """Two 3x3 conv + PReLU layers used as a residual unit."""

    def __init__(self, c: int) -> None:
        super().__init__(_conv(c, c), _conv(c, c))


class FlowBlock(nn.Module):
    """One refinement stage: estimates a flow update (4 channels: to frame 0 and to frame 1)
    and a mask update at 1/scale of the input resolution. Parameter names follow the
    checkpoint (conv0, convblock0-3, conv1, conv2)."""

    def __init__(self, cin: int, c: int = 90) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2), _conv(c // 2, c, 2))
        self.convblock0 = _Pair(c)
        self.convblock1 = _Pair(c)
        self.convblock2 = _Pair(c)
        self.convblock3 = _Pair(c)
        self.conv1 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                   nn.ConvTranspose2d(c // 2, 4, 4, 2, 1))
        self.conv2 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                   nn.ConvTranspose2d(c // 2, 1, 4, 2, 1))

    def forward(self, x: torch.Tensor, flow: torch.Tensor, scale: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear",
                                 align_corners=False) / scale
        feat = self.conv0(torch.cat((x, flow), 1))
        for unit in (self.convblock0, self.convblock1, self.convblock2, self.convblock3):
            feat = unit(feat) + feat
        dflow = self.conv1(feat)
        dmask = self.conv2(feat)
        if scale != 1.0:
            dflow = F.interpolate(dflow, scale_factor=scale, mode="bilinear",
                                  align_corners=False) * scale
            dmask = F.interpolate(dmask, scale_factor=scale, mode="bilinear", align_corners=False)
        return dflow, dmask


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: sample ``img`` at (x + flow_x, y + flow_y), border-clamped, bilinear.

    The grid is built with arange from the tensor's own size (not a cached linspace) so
    that the exported model stays correct at every frame size.
    """
    h, w = img.shape[2], img.shape[3]
    xs = torch.arange(w, dtype=img.dtype, device=img.device).view(1, 1, w).expand(1, h, w)
    ys = torch.arange(h, dtype=img.dtype, device=img.device).view(1, h, 1).expand(1, h, w)
    gx = (xs + flow[:, 0]) * (2.0 / (w - 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / (h - 1)) - 1.0
    grid = torch.stack((gx, gy), dim=3)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _swap(flow: torch.Tensor) -> torch.Tensor:
    """Exchange the two 2-channel halves of a 4-channel flow (frame 0 <-> frame 1)."""
    return torch.cat((flow[:, 2:4], flow[:, 0:2]), 1)


class IFNetHDv3(nn.Module):
    """Middle frame of two RGB frames in [0,1] (1x3xHxW each, H and W multiples of 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.block0 = FlowBlock(7 + 4)
        self.block1 = FlowBlock(7 + 4)
        self.block2 = FlowBlock(7 + 4)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        flow = torch.zeros_like(img0[:, :1]).repeat(1, 4, 1, 1)
        mask = torch.zeros_like(img0[:, :1])
        w0, w1 = img0, img1
        for block, scale in zip((self.block0, self.block1, self.block2), SCALES, strict=True):
            # The block runs both ways round and the two estimates are averaged (the
            # checkpoint was trained so; it makes the result symmetric in the two frames).
            f0, m0 = block(torch.cat((w0, w1, mask), 1), flow, scale)
            f1, m1 = block(torch.cat((w1, w0, -mask), 1), _swap(flow), scale)
            flow = flow + (f0 + _swap(f1)) / 2
            mask = mask + (m0 - m1) / 2
            w0 = warp(img0, flow[:, 0:2])
            w1 = warp(img1, flow[:, 2:4])
        alpha = torch.sigmoid(mask)
        return w0 * alpha + w1 * (1 - alpha)


def load_hdv3(path: Path) -> IFNetHDv3:
    """The HD v3 checkpoint (``flownet.pkl``: a state dict, keys maybe ``module.``-prefixed;
    the teacher block ``block_tea`` is used only in training and is dropped)."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("block_tea.")}
    net = IFNetHDv3()
    net.load_state_dict(state, strict=True)
    return net.eval()
