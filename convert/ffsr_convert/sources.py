"""Loading source checkpoints safely into a framework-neutral description."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffsr.errors import FfsrError
from ffsr_convert.weights import SmallSRNet, from_tf_checkpoint

SMALL_ARCHS = ("espcn", "srcnn")


@dataclass
class LoadedModel:
    """A source model ready to export: a torch module on the tensor FFmpeg will feed."""

    arch: str
    scale: int
    model_scale: int
    color: str  # y | rgb
    module: Any  # torch.nn.Module, float32, eval mode
    small_net: SmallSRNet | None = None  # set for TF-checkpoint sources (exports a .pb)
    reference: Callable[[np.ndarray], np.ndarray] | None = None
    """The source's own way of running on a 1xCxHxW frame, where it differs from ``module``
    (waifu2x: block-wise with its edge padding); conversions are checked against it."""


def tf_checkpoint_prefix(path: Path) -> Path:
    """Accept a checkpoint directory, a prefix, or one of its files."""
    if path.is_dir():
        index = sorted(path.glob("*.index"))
        if not index:
            raise FfsrError(f"No TensorFlow checkpoint (*.index) in {path}.")
        return index[-1].with_suffix("")
    for suffix in (".index", ".meta"):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    if ".data-" in path.name:
        return path.with_name(path.name.split(".data-")[0])
    return path


def load_small_net(arch: str, path: Path, scale: int) -> LoadedModel:
    from ffsr_convert.torch_nets import SmallSR

    prefix = tf_checkpoint_prefix(path)
    if not Path(str(prefix) + ".index").is_file():
        raise FfsrError(f"TensorFlow checkpoint not found: {prefix}.index")
    try:
        net = from_tf_checkpoint(arch, prefix, scale)
    except ValueError as e:
        raise FfsrError(f"Cannot use {path} as {arch.upper()} x{scale}: {e}.") from e
    except Exception as e:  # TF raises DataLossError etc. for damaged files
        raise FfsrError(f"Cannot read the TensorFlow checkpoint {prefix} "
                        f"(truncated or corrupt?): {type(e).__name__}.") from e
    module = SmallSR(net).eval()
    return LoadedModel(arch=arch, scale=scale, model_scale=scale if net.upsamples else 1,
                       color="y", module=module, small_net=net)


def read_state_dict(path: Path) -> dict[str, Any]:
    """Weights only: safetensors, or torch.load with weights_only=True (no arbitrary pickle)."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise FfsrError(f"Cannot read {path} as weights (truncated, corrupt, or a pickle "
                        f"that is not plain weights): {str(e).splitlines()[0][:160]}") from e
    if not isinstance(data, dict):
        raise FfsrError(f"{path} holds a {type(data).__name__}, not a state dict of weights.")
    return data


def load_spandrel(path: Path, scale: int | None, arch: str | None) -> LoadedModel:
    """Detect the architecture (SRVGGNetCompact, ESRGAN/RRDBNet, SPAN, ...) with spandrel."""
    import spandrel

    state = read_state_dict(path)
    try:
        desc = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError as e:
        raise FfsrError(f"Unknown architecture in {path}: spandrel recognises none of its "
                        "weights (not an ESRGAN-family super-resolution model?).") from e
    except Exception as e:
        raise FfsrError(f"Cannot load {path} with spandrel: {str(e).splitlines()[0][:200]}") from e
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise FfsrError(f"{path} is a {desc.architecture.name} model, not a single-image "
                        "super-resolution model.")
    name = desc.architecture.name
    if arch and arch.lower() not in (name.lower(), desc.architecture.id.lower()):
        raise FfsrError(f"{path} holds a {name} model, not {arch}.")
    if scale and scale != desc.scale:
        raise FfsrError(f"{path} is a x{desc.scale} model; it cannot upscale x{scale}.")
    if desc.input_channels not in (1, 3) or desc.output_channels != desc.input_channels:
        raise FfsrError(f"{name} with {desc.input_channels}->{desc.output_channels} channels: "
                        "FFmpeg runs 1-channel (Y) or 3-channel (RGB) models only.")
    module = desc.model.float().eval()
    return LoadedModel(arch=name, scale=desc.scale, model_scale=desc.scale,
                       color="y" if desc.input_channels == 1 else "rgb", module=module)


def load_source(path: Path, arch: str | None, scale: int | None) -> LoadedModel:
    if not path.exists() and not Path(str(path) + ".index").exists():
        raise FfsrError(f"Checkpoint not found: {path}")
    is_tf = path.is_dir() or path.name.endswith((".index", ".meta", ".ckpt")) or ".data-" in path.name
    if arch in SMALL_ARCHS or is_tf:
        if arch not in SMALL_ARCHS:
            raise FfsrError("TensorFlow checkpoints need --arch espcn or --arch srcnn.")
        return load_small_net(arch, path, scale or 2)
    if path.suffix == ".npz":
        from ffsr_convert.waifu2x import load_waifu2x

        return load_waifu2x(path, arch, scale)
    if path.suffix not in (".pth", ".pt", ".safetensors", ".bin", ".ckpt"):
        raise FfsrError(f"Unsupported checkpoint type '{path.suffix}' "
                        "(expected a TF checkpoint, .pth, .safetensors, waifu2x .npz or .onnx).")
    return load_spandrel(path, scale, arch)
