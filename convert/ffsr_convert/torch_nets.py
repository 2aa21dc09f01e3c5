"""PyTorch versions of the small SR nets, and the RGB wrapper LibTorch needs.

FFmpeg's LibTorch backend always feeds a 1x3xHxW RGB tensor in [0,1]; a Y-only model
is wrapped: RGB -> YCbCr (BT.601 full range, the code/255 values FFmpeg feeds), model
on Y, bicubic on CbCr, back to RGB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ffsr_convert.weights import SmallSRNet

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


def symmetric_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """TensorFlow's SYMMETRIC padding (edge pixel repeated), with dynamic H/W."""
    x = torch.cat([x[:, :, :p].flip(2), x, x[:, :, -p:].flip(2)], 2)
    return torch.cat([x[:, :, :, :p].flip(3), x, x[:, :, :, -p:].flip(3)], 3)


class SmallSR(nn.Module):
    """ESPCN/SRCNN on a N x 1 x H x W Y tensor."""

    def __init__(self, net: SmallSRNet) -> None:
        super().__init__()
        self.pad = net.pad
        self.scale = net.scale
        self.upsamples = net.upsamples
        self.acts = [layer.activation for layer in net.layers]
        self.convs = nn.ModuleList()
        for layer in net.layers:
            kh, kw, cin, cout = layer.kernel.shape
            conv = nn.Conv2d(cin, cout, (kh, kw), bias=True)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(layer.kernel.transpose(3, 2, 0, 1).copy()))
                assert conv.bias is not None
                conv.bias.copy_(torch.from_numpy(layer.bias))
            self.convs.append(conv)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        x = symmetric_pad(y, self.pad)
        for conv, act in zip(self.convs, self.acts, strict=True):
            x = conv(x)
            if act != "linear":
                x = ACTIVATIONS[act](x)
        if self.upsamples:
            x = F.pixel_shuffle(x, self.scale)
        return x


class YModelOnRGB(nn.Module):
    """Run a Y-only model inside an RGB-in/RGB-out module (for FFmpeg's LibTorch backend)."""

    def __init__(self, y_model: nn.Module, scale: int) -> None:
        super().__init__()
        self.y_model = y_model
        self.scale = scale

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cb = (b - y) * 0.564
        cr = (r - y) * 0.713
        y2 = self.y_model(y)
        if self.scale != 1:
            cbcr = F.interpolate(torch.cat([cb, cr], 1), scale_factor=float(self.scale),
                                 mode="bicubic", align_corners=False)
            cb, cr = cbcr[:, 0:1], cbcr[:, 1:2]
        r2 = y2 + 1.403 * cr
        g2 = y2 - 0.344 * cb - 0.714 * cr
        b2 = y2 + 1.773 * cb
        return torch.cat([r2, g2, b2], 1).clamp(0.0, 1.0)
