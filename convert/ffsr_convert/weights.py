"""Plain-numpy weights of the small SR nets FFmpeg was built around (ESPCN, SRCNN).

Both frameworks are built from these arrays, so TensorFlow, PyTorch and ONNX outputs
come from the very same numbers. Kernels are HWIO float32 (TensorFlow's layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ffsr_convert import import_tensorflow


@dataclass(frozen=True)
class Layer:
    kernel: np.ndarray  # HWIO
    bias: np.ndarray
    activation: str  # tanh | relu | sigmoid | linear


@dataclass(frozen=True)
class SmallSRNet:
    """ESPCN (sub-pixel, output scale× larger) or SRCNN (same size, input pre-upscaled)."""

    arch: str  # espcn | srcnn
    scale: int
    layers: tuple[Layer, ...]

    @property
    def pad(self) -> int:
        """Symmetric padding that makes the VALID convolutions keep the input size."""
        return sum(layer.kernel.shape[0] // 2 for layer in self.layers)

    @property
    def upsamples(self) -> bool:
        return self.arch == "espcn"


ARCH_LAYOUT = {
    # conv name -> (kernel shape HWIO without channel counts, activation)
    "espcn": (("conv1", "tanh"), ("conv2", "tanh"), ("conv3", "sigmoid")),
    "srcnn": (("conv1", "relu"), ("conv2", "relu"), ("conv3", "linear")),
}


def from_tf_checkpoint(arch: str, checkpoint: Path, scale: int) -> SmallSRNet:
    """Read the variables of an hvrr-sr style TF1 checkpoint (optimizer slots ignored)."""
    tf = import_tensorflow()

    reader = tf.train.load_checkpoint(str(checkpoint))
    shapes = reader.get_variable_to_shape_map()
    layers = []
    for name, act in ARCH_LAYOUT[arch]:
        k, b = f"{arch}/{name}/kernel", f"{arch}/{name}/bias"
        if k not in shapes or b not in shapes:
            raise ValueError(f"checkpoint has no variable {k}: not an {arch.upper()} checkpoint")
        layers.append(Layer(reader.get_tensor(k).astype(np.float32),
                            reader.get_tensor(b).astype(np.float32), act))
    net = SmallSRNet(arch, scale, tuple(layers))
    check_shapes(net)
    return net


def check_shapes(net: SmallSRNet) -> None:
    """Refuse weights that cannot produce the claimed scale (e.g. ESPCN x3 from x2 weights)."""
    last_out = net.layers[-1].kernel.shape[3]
    want = net.scale**2 if net.upsamples else 1
    if last_out != want:
        trained = int(round(last_out**0.5)) if net.upsamples else 1
        raise ValueError(
            f"the weights give {last_out} output channels, which is scale {trained}, "
            f"not the requested scale {net.scale}")
    if net.layers[0].kernel.shape[2] != 1:
        raise ValueError("expected a one-channel (Y) input layer")


def fixed_espcn(scale: int = 2, seed: int = 0) -> SmallSRNet:
    """An ESPCN-shaped net with fixed pseudo-random weights (tests, benchmarks)."""
    rng = np.random.default_rng(seed)
    shapes = ((5, 5, 1, 64), (3, 3, 64, 32), (3, 3, 32, scale * scale))
    acts = ("tanh", "tanh", "sigmoid")
    layers = tuple(
        Layer((rng.standard_normal(s) * (1.0 / np.sqrt(np.prod(s[:3])))).astype(np.float32),
              (rng.standard_normal(s[3]) * 0.1).astype(np.float32), a)
        for s, a in zip(shapes, acts, strict=True))
    return SmallSRNet("espcn", scale, layers)
