"""The waifu2x networks in PyTorch, built from `.npz` arrays (no Chainer needed).

`Waifu2xFrame` is what gets exported: it replicates the edge pixels by the border the
network consumes, so FFmpeg gets full-size frames whose edges are those waifu2x's own
edge-replication padding gives.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ffsr_convert.waifu2x.npz import Spec

SLOPE = 0.1  # waifu2x's leaky ReLU


def _param(a: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(a)), requires_grad=False)


def conv(weights: dict[str, np.ndarray], name: str) -> nn.Conv2d:
    w = weights[f"{name}/W"]
    layer = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], bias=True)
    layer.weight = _param(w)
    layer.bias = _param(weights[f"{name}/b"])
    return layer


def deconv(weights: dict[str, np.ndarray], name: str) -> nn.ConvTranspose2d:
    """Chainer's Deconvolution2D(ksize 4, stride 2, pad 3, nobias): output 2·in − 4."""
    w = weights[f"{name}/W"]
    layer = nn.ConvTranspose2d(w.shape[0], w.shape[1], 4, stride=2, padding=3, bias=False)
    layer.weight = _param(w)
    return layer


class VGG7(nn.Module):
    """Seven valid 3x3 convolutions, leaky ReLU between: same scale, 7 pixels lost per edge."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv(weights, f"conv{i}") for i in range(1, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.convs[:-1]:
            x = F.leaky_relu(layer(x), SLOPE)
        return self.convs[-1](x)


class UpConv7(nn.Module):
    """Six valid 3x3 convolutions, then a stride-2 deconvolution: output 2·in − 28."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv(weights, f"conv{i}") for i in range(1, 7))
        self.up = deconv(weights, "conv7")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.convs:
            x = F.leaky_relu(layer(x), SLOPE)
        return self.up(x)


NETS: dict[str, type[nn.Module]] = {"VGG7": VGG7, "UpConv7": UpConv7}


def build_net(spec: Spec, weights: dict[str, np.ndarray]) -> nn.Module:
    """The bare network (valid convolutions: it shrinks the frame by ``spec.offset``)."""
    if spec.arch not in NETS:
        raise NotImplementedError(f"waifu2x {spec.arch} is not converted by ffsr yet")
    return NETS[spec.arch](weights).float().eval()


class Waifu2xFrame(nn.Module):
    """Whole frame in, whole frame out: [nearest 2x], edge replication, the bare net.

    Equal to waifu2x's block-wise run (which pads the same way and tiles without gaps) for
    nets without global operations (VGG7, UpConv7)."""

    def __init__(self, net: nn.Module, spec: Spec) -> None:
        super().__init__()
        self.net = net
        self.prescale = spec.nearest_prescale
        self.pad = nn.ReplicationPad2d(spec.input_border)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prescale > 1:
            x = F.interpolate(x, scale_factor=float(self.prescale), mode="nearest")
        return self.net(self.pad(x))
