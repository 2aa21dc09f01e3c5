"""waifu2x's own way of running a network on an image, written from its description
(reconstruct.blockwise): the source that conversions of waifu2x models are checked against.

The image is padded by edge replication (``offset / inner_scale`` input pixels on the top
and left; on the bottom and right as much again plus what completes the last block), cut
into overlapping blocks of ``block_size`` output pixels, each run on its own, and the
outputs laid side by side and cropped to ``inner_scale`` times the input.
"""

from __future__ import annotations

import numpy as np

from ffsr_convert.waifu2x.npz import BLOCK_SIZE, Spec


def nearest(x: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale by an integer factor (waifu2x's nn_scaling for 1x nets)."""
    return x.repeat(factor, axis=2).repeat(factor, axis=3) if factor > 1 else x


def blockwise(net: object, spec: Spec, x: np.ndarray, block_size: int = BLOCK_SIZE) -> np.ndarray:
    """Run the bare ``net`` on a 1xCxHxW float32 image in [0,1] as waifu2x does."""
    import torch

    assert isinstance(net, torch.nn.Module)
    x = nearest(x, spec.nearest_prescale)
    s, border = spec.inner_scale, spec.input_border
    step = block_size // s  # input pixels per block, without the border
    _, c, h, w = x.shape
    nh, nw = -(-h // step), -(-w // step)
    padded = np.pad(x, ((0, 0), (0, 0), (border, border + nh * step - h),
                        (border, border + nw * step - w)), mode="edge")
    size = step + 2 * border
    tiles = np.concatenate([padded[:, :, i * step:i * step + size, j * step:j * step + size]
                            for i in range(nh) for j in range(nw)])
    with torch.no_grad():
        out = np.concatenate([net(torch.from_numpy(t[None])).numpy() for t in tiles])
    if out.shape[2:] != (block_size, block_size):
        raise ValueError(f"{spec.arch} made {out.shape[2:]} blocks from {size}x{size}, "
                         f"not {block_size}x{block_size}: wrong offset or scale")
    full = out.reshape(nh, nw, c, block_size, block_size).transpose(2, 0, 3, 1, 4)
    full = full.reshape(1, c, nh * block_size, nw * block_size)
    return np.ascontiguousarray(full[:, :, :h * s, :w * s])
