"""RIFE v4 (Practical-RIFE 4.2x) IFNet: a feature encoder and five coarse-to-fine flow
blocks that take the timestep t as one more input plane, so one network makes the frame at
any t in (0, 1), not only the middle one.

Written for export like HD v3's network (net.py): sizes come from the tensors at run time
and the timestep is a tensor, so the ONNX graph keeps dynamic H, W and t.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ffsr_convert.rife.net import warp

SCALES = (16.0, 8.0, 4.0, 2.0, 1.0)
"""Working resolution of each block (1/16 .. full), Practical-RIFE's list at scale 1.0."""
MULTIPLE = 64
"""Height and width must be multiples of this (block 0 works at 1/16 and its encoder halves
twice more)."""
FEATURES = 8
"""Channels a block hands to the next one besides flow (4) and mask (1)."""


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2))


class _ResConv(nn.Module):
    """3x3 conv scaled by a learnt per-channel beta, added to its input."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, 0.2)


class FlowBlockV4(nn.Module):
    """Flow (4), mask (1) and features (8) at 1/scale of the input, returned at full size.
    Parameter names follow the checkpoint (conv0, convblock.0-7, lastconv)."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2), _conv(c // 2, c))
        self.convblock = nn.Sequential(*(_ResConv(c) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * (5 + FEATURES), 4, 2, 1),
                                      nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            if scale != 1.0:
                flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear",
                                     align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        if scale != 1.0:
            out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


class _Encoder(nn.Module):
    """4 feature channels per frame at full size, warped along with the frames."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.cnn0(x), 0.2)
        x = F.leaky_relu(self.cnn1(x), 0.2)
        x = F.leaky_relu(self.cnn2(x), 0.2)
        return self.cnn3(x)


class IFNetV4(nn.Module):
    """The frame at time t between two RGB frames in [0,1] (1x3xHxW each, H and W multiples
    of 64; t a tensor broadcastable to 1x1x1x1)."""

    def __init__(self) -> None:
        super().__init__()
        first = 3 + 3 + 4 + 4 + 1
        later = 3 + 3 + 4 + 4 + 1 + 1 + FEATURES + 4
        self.block0 = FlowBlockV4(first, 192)
        self.block1 = FlowBlockV4(later, 128)
        self.block2 = FlowBlockV4(later, 96)
        self.block3 = FlowBlockV4(later, 64)
        self.block4 = FlowBlockV4(later, 32)
        self.encode = _Encoder()

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        plane = torch.ones_like(img0[:, :1]) * t
        f0, f1 = self.encode(img0), self.encode(img1)
        flow, mask, feat = self.block0(torch.cat((img0, img1, f0, f1, plane), 1), None, SCALES[0])
        w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        for block, scale in zip((self.block1, self.block2, self.block3, self.block4), SCALES[1:],
                                strict=True):
            # Each later block refines the flow, but replaces mask and features.
            x = torch.cat((w0, w1, warp(f0, flow[:, :2]), warp(f1, flow[:, 2:4]), plane, mask,
                           feat), 1)
            dflow, mask, feat = block(x, flow, scale)
            flow = flow + dflow
            w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        alpha = torch.sigmoid(mask)
        return w0 * alpha + w1 * (1 - alpha)


def load_v4(path: Path) -> IFNetV4:
    """The v4 checkpoint (``flownet.pkl``: a state dict, keys maybe ``module.``-prefixed); the
    distillation ``teacher.*`` and ``caltime.*`` weights serve training only and are dropped."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(("teacher.", "caltime."))}
    net = IFNetV4()
    net.load_state_dict(state, strict=True)
    return net.eval()
