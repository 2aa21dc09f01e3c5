"""waifu2x (tsurumeso's waifu2x-chainer `.npz` weights): recognise the network from its
keys (npz.py), build it in PyTorch (nets.py) with waifu2x's edge-replication border (and,
for UpResNet10, its block-wise run) inside the exported model, and check it against
waifu2x's own block-wise run (reference.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ffsr.errors import FfsrError
from ffsr_convert.sources import LoadedModel
from ffsr_convert.waifu2x.npz import Spec, read_npz, spec_for

ARCHS = ("VGG7", "UpConv7", "UpResNet10")


def _nearest_prescale(arch: str, path: Path, scale: int | None) -> int:
    """waifu2x scales with a 1x net (VGG7 `*_scale_*` weights) after a nearest 2x."""
    if arch != "VGG7":
        return 1
    return 2 if scale == 2 or (scale is None and "_scale" in path.stem) else 1


def load_waifu2x(path: Path, arch: str | None, scale: int | None) -> LoadedModel:
    """A waifu2x .npz as a whole-frame model, with waifu2x's block-wise run as reference."""
    from ffsr_convert.waifu2x.nets import build_net, frame_model
    from ffsr_convert.waifu2x.reference import blockwise

    weights = read_npz(path)
    spec = spec_for(weights)
    if arch and arch.lower() not in (spec.arch.lower(), f"waifu2x-{spec.arch}".lower()):
        raise FfsrError(f"{path} holds a waifu2x {spec.arch} model, not {arch}.")
    spec = spec_for(weights, _nearest_prescale(spec.arch, path, scale))
    if scale and scale != spec.scale:
        raise FfsrError(f"{path} is a x{spec.scale} waifu2x {spec.arch} model; "
                        f"it cannot upscale x{scale}.")
    try:
        net = build_net(spec, weights)
    except NotImplementedError as e:
        raise FfsrError(f"{path}: {e}.") from e
    except (KeyError, RuntimeError) as e:
        raise FfsrError(f"{path} does not hold complete waifu2x {spec.arch} weights: {e}") from e

    def reference(x: np.ndarray) -> np.ndarray:
        return blockwise(net, spec, x)

    return LoadedModel(arch=f"waifu2x-{spec.arch}", scale=spec.scale, model_scale=spec.scale,
                       color="rgb" if spec.channels == 3 else "y",
                       module=frame_model(net, spec), reference=reference)


__all__ = ["ARCHS", "Spec", "load_waifu2x"]
