"""The DNN backend registry: every fact about FFmpeg's onnx/openvino/torch/tensorflow backends
that the rest of ffsr needs, in one place (see docs/ffmpeg-dnn.md for the sources)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ffsr.errors import FfsrError


@dataclass(frozen=True)
class Backend:
    """How one FFmpeg DNN backend loads, feeds and reports a model."""

    name: str
    """ffsr's name, also FFmpeg's ``dnn_backend`` value."""
    suffix: str
    """Model file format it loads."""
    configure_flag: str
    layout: str
    """Tensor layout it feeds: NCHW or NHWC."""
    rgb_only: bool
    """LibTorch always feeds 1x3xHxW RGB, so Y-only models need an RGB wrapper."""
    devices: tuple[str, ...]
    gpu_log_pattern: str | None
    """A log line that proves the GPU really ran (None: not checkable from the log)."""
    tuning: tuple[tuple[str, str], ...] = ()
    """Backend-specific options ffsr sets by default (name, value)."""
    precision_option: str | None = None
    """The filter option that sets the inference precision (None: the model's own f32)."""
    precision_log_pattern: str | None = None
    """A log line naming the precision the backend really compiled (group 1)."""

    def confirms_gpu(self, log: str) -> bool:
        return bool(self.gpu_log_pattern and re.search(self.gpu_log_pattern, log))


BACKENDS: dict[str, Backend] = {
    "onnx": Backend(
        name="onnx",
        suffix=".onnx",
        configure_flag="--enable-libonnxruntime",
        layout="NCHW",
        rgb_only=False,
        devices=("cpu", "cuda"),
        # The ONNX Runtime backend only WARNS when the CUDA provider fails and runs on CPU.
        gpu_log_pattern=r"Using CUDA execution provider on device \d+",
    ),
    "torch": Backend(
        name="torch",
        suffix=".pt",
        configure_flag="--enable-libtorch",
        layout="NCHW",
        rgb_only=True,
        devices=("cpu", "cuda"),
        gpu_log_pattern=r"Using CUDA/ROCm device: cuda",
        tuning=(("optimize", "1"),),
    ),
    "openvino": Backend(
        name="openvino",
        suffix=".onnx",
        configure_flag="--enable-libopenvino",
        layout="NCHW",
        rgb_only=False,
        devices=("cpu",),
        # OpenVINO reads the same ONNX file as ONNX Runtime; ffsr does not run it on GPUs.
        gpu_log_pattern=None,
        # 9.0.2 feeds OpenVINO NHWC u8 frames and transposes them only when told the model's
        # layout: without it a 3-channel NCHW model reads scrambled pixels (10 dB, checked).
        # Two streams with two requests in flight keep both halves of the CPU busy while
        # FFmpeg converts frames (realesr-animevideov3: 10.7 s vs 15.7 s for 40 frames on 2
        # cores, benchmarks/results); frames still come out in order (tested).
        tuning=(("layout", "nchw"), ("num_streams", "2"), ("nireq", "2")),
        # Options added by docker/patches/0007 (9.0.2 passes none to OpenVINO).
        precision_option="precision",
        precision_log_pattern=r"OpenVINO compiled the model for \S+: inference precision (\w+)",
    ),
    "tensorflow": Backend(
        name="tensorflow",
        suffix=".pb",
        configure_flag="--enable-libtensorflow",
        layout="NHWC",
        rgb_only=False,
        devices=("cpu",),
        gpu_log_pattern=None,
    ),
}


ALL_BACKENDS: tuple[str, ...] = tuple(BACKENDS)


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise FfsrError(
            f"Unknown DNN backend '{name}'; choose one of: {', '.join(BACKENDS)}."
        ) from None


def backend_names() -> list[str]:
    return list(BACKENDS)
