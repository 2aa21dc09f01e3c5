"""The waifu2x networks in PyTorch, built from `.npz` arrays (no Chainer needed).

`frame_model` is what gets exported: it replicates the edge pixels by the border the
network consumes, so FFmpeg gets full-size frames whose edges are those waifu2x's own
edge-replication padding gives.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ffsr_convert.waifu2x.npz import BLOCK_SIZE, Spec

SLOPE = 0.1  # waifu2x's leaky ReLU


def _param(a: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(a)), requires_grad=False)


def conv(weights: dict[str, np.ndarray], name: str) -> nn.Conv2d:
    w = weights[f"{name}/W"]
    layer = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], bias=True)
    layer.weight = _param(w)
    layer.bias = _param(weights[f"{name}/b"])
    return layer


def linear(weights: dict[str, np.ndarray], name: str) -> nn.Linear:
    w = weights[f"{name}/W"]
    layer = nn.Linear(w.shape[1], w.shape[0], bias=True)
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


class SEResBlock(nn.Module):
    """Two valid 3x3 convolutions, squeeze-excitation over the whole input, cropped skip."""

    def __init__(self, weights: dict[str, np.ndarray], name: str) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv(weights, f"{name}/conv1"), conv(weights, f"{name}/conv2")
        self.fc1, self.fc2 = linear(weights, f"{name}/fc1"), linear(weights, f"{name}/fc2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), SLOPE)), SLOPE)
        se = torch.sigmoid(self.fc2(torch.relu(self.fc1(h.mean(dim=(2, 3))))))
        return h * se[:, :, None, None] + x[:, :, 2:-2, 2:-2]


class UpResNet10(nn.Module):
    """conv_pre, five SE res blocks, conv_bridge plus a cropped skip, stride-2 deconvolution:
    output 2·in − 52. The SE averages depend on the input's extent: waifu2x runs it on
    blocks of 64+26 input pixels, so whole frames must be cut the same way (`Tiled`)."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.pre = conv(weights, "conv_pre")
        self.res = nn.Sequential(*(SEResBlock(weights, f"res{i}") for i in range(1, 6)))
        self.bridge = conv(weights, "conv_bridge")
        self.up = deconv(weights, "conv_post")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.leaky_relu(self.pre(x), SLOPE)
        h = F.leaky_relu(self.bridge(self.res(skip)), SLOPE)
        return self.up(h + skip[:, :, 11:-11, 11:-11])


NETS: dict[str, type[nn.Module]] = {"VGG7": VGG7, "UpConv7": UpConv7, "UpResNet10": UpResNet10}


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


class Tiled(nn.Module):
    """waifu2x's block-wise run inside the model, for nets whose output depends on the
    extent of their input (UpResNet10's squeeze-excitation means): pad by edge replication,
    cut overlapping blocks of ``block_size`` output pixels, run them as one batch, lay the
    outputs side by side and crop. Frame sizes stay dynamic (Range/Gather in ONNX)."""

    def __init__(self, net: nn.Module, spec: Spec, block_size: int) -> None:
        super().__init__()
        self.net = net
        self.scale = spec.inner_scale
        self.block = block_size
        self.step = block_size // spec.inner_scale
        self.size = self.step + 2 * spec.input_border
        b = spec.input_border
        # enough on the bottom/right for any frame size; rows past the last block are unused
        self.pad = nn.ReplicationPad2d((b, b + self.step - 1, b, b + self.step - 1))

    def _starts(self, n: int) -> torch.Tensor:
        count = (n + self.step - 1) // self.step
        return ((torch.arange(count) * self.step)[:, None] + torch.arange(self.size)[None, :]).reshape(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = x.shape[1], x.shape[2], x.shape[3]
        nh, nw = (h + self.step - 1) // self.step, (w + self.step - 1) // self.step
        p = self.pad(x).index_select(2, self._starts(h)).index_select(3, self._starts(w))
        tiles = p.reshape(c, nh, self.size, nw, self.size).permute(1, 3, 0, 2, 4)
        y = self.net(tiles.reshape(nh * nw, c, self.size, self.size))
        y = y.reshape(nh, nw, c, self.block, self.block).permute(2, 0, 3, 1, 4)
        y = y.reshape(1, c, nh * self.block, nw * self.block)
        # contiguous: FFmpeg's LibTorch backend reads the output's memory as dense NCHW
        return y[:, :, :h * self.scale, :w * self.scale].contiguous()


def frame_model(net: nn.Module, spec: Spec) -> nn.Module:
    """What gets exported: one pass over the edge-padded frame where that equals waifu2x's
    block-wise run (VGG7, UpConv7), the block-wise run itself where it does not (UpResNet10:
    one pass differs by up to 11 levels, 93.5 % within one, measured on the shared GIF)."""
    if spec.arch == "UpResNet10":
        return Tiled(net, spec, BLOCK_SIZE).eval()
    return Waifu2xFrame(net, spec).eval()
