"""waifu2x-chainer `.npz` weights: read them and recognise which network they belong to.

Chainer stores `convN/W` (OIHW for convolutions, IOHW for deconvolutions, as PyTorch) and
`convN/b`; the architecture is not written down, so it is told apart by its keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ffsr.errors import FfsrError


@dataclass(frozen=True)
class Spec:
    """What waifu2x knows about a network besides its weights."""

    arch: str  # VGG7 | UpConv7 | UpResNet10
    channels: int  # 3 (RGB) or 1 (Y)
    offset: int  # output pixels lost at each edge (valid convolutions)
    inner_scale: int  # output/input size of the network itself
    nearest_prescale: int = 1  # waifu2x's nearest-neighbour 2x before a 1x net that upscales

    @property
    def input_border(self) -> int:
        """Edge-replication padding, in input pixels, that gives a full-size output."""
        return self.offset // self.inner_scale

    @property
    def scale(self) -> int:
        return self.inner_scale * self.nearest_prescale


OFFSETS = {"VGG7": (7, 1), "UpConv7": (14, 2), "UpResNet10": (26, 2)}
BLOCK_SIZE = 128  # output pixels per block in waifu2x's block-wise run (its --block_size)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz, without pickles (allow_pickle=False)."""
    try:
        with np.load(str(path), allow_pickle=False) as z:
            return {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
    except Exception as e:
        raise FfsrError(f"Cannot read {path} as waifu2x .npz weights (truncated or not an "
                        f"npz of arrays): {str(e).splitlines()[0][:160]}") from e


def detect(weights: dict[str, np.ndarray]) -> str:
    """VGG7 (7 convolutions with bias), UpConv7 (6 + a 4x4 deconvolution without bias) or
    UpResNet10 (conv_pre, five squeeze-excitation res blocks, conv_post deconvolution)."""
    if "conv_pre/W" in weights and "conv_post/W" in weights and "res1/fc1/W" in weights:
        return "UpResNet10"
    last = weights.get("conv7/W")
    if last is not None and all(f"conv{i}/W" in weights for i in range(1, 7)):
        if last.shape[2:] == (4, 4) and "conv7/b" not in weights:
            return "UpConv7"
        if last.shape[2:] == (3, 3) and "conv7/b" in weights:
            return "VGG7"
    raise FfsrError("Unknown waifu2x architecture: the .npz matches none of VGG7, UpConv7 or "
                    f"UpResNet10 (keys: {', '.join(sorted(weights)[:6])}…).")


def spec_for(weights: dict[str, np.ndarray], nearest_prescale: int = 1) -> Spec:
    arch = detect(weights)
    first = weights["conv_pre/W" if arch == "UpResNet10" else "conv1/W"]
    channels = int(first.shape[1])
    if channels not in (1, 3):
        raise FfsrError(f"waifu2x {arch} with {channels} input channels: FFmpeg runs 1-channel "
                        "(Y) or 3-channel (RGB) models only.")
    offset, inner = OFFSETS[arch]
    return Spec(arch, channels, offset, inner, nearest_prescale)
