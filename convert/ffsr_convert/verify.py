"""Proof that a converted file computes what its source computes: in its own runtime,
and once through ffmpeg itself (DESIGN.md §5: ≤1 level on ≥99.9 % of pixels)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.media import probe, read_frames, read_yuv420p_y
from ffsr.model_card import ModelCard
from ffsr.quality import compare_8bit, to_8bit


@dataclass(frozen=True)
class Frames:
    """Verification input as FFmpeg will see it (after any bicubic pre-scale)."""

    clip: Path
    count: int
    rgb: np.ndarray  # [N,H,W,3] uint8
    y: np.ndarray  # [N,H,W] uint8 (Y of yuv420p)


def load_frames(ffmpeg: Path, ffprobe: Path, clip: Path, count: int, prescale: int) -> Frames:
    info = probe(ffprobe, clip)
    vf = f"scale=iw*{prescale}:ih*{prescale}:flags=bicubic" if prescale > 1 else None
    w, h = info.width * prescale, info.height * prescale
    return Frames(clip, count, read_frames(ffmpeg, clip, "rgb24", w, h, count, vf=vf),
                  read_yuv420p_y(ffmpeg, clip, w, h, count, vf=vf))


def model_input(frames: Frames, channels: int) -> list[np.ndarray]:
    """NCHW float32 tensors in [0,1], one per frame."""
    if channels == 1:
        return [f[None, None].astype(np.float32) / 255 for f in frames.y]
    return [f.transpose(2, 0, 1)[None].astype(np.float32) / 255 for f in frames.rgb]


def as_8bit_planes(outputs: list[np.ndarray]) -> np.ndarray:
    """NCHW float outputs -> uint8 [N,H,W] (1 channel) or [N,H,W,3]."""
    arr = np.concatenate(outputs)
    arr = arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)
    return to_8bit(arr)


def run_torch_module(module: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [module(torch.from_numpy(x)).numpy() for x in inputs]


def run_onnx(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [sess.run(["y"], {"x": x})[0] for x in inputs]


def run_openvino(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """OpenVINO's own runtime at f32 (its CPU plugin would pick bf16 by itself)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return [np.asarray(compiled([x])[0]) for x in inputs]


def run_torchscript(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    return run_torch_module(torch.jit.load(str(path)), inputs)


def run_pb(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ffsr_convert.exporters import run_frozen_graph

    return run_frozen_graph(path, inputs)


def run_in_ffmpeg(ffmpeg: Path, card: ModelCard, backend: str, frames: Frames,
                  y_form: str = "compact", precision: str | None = None) -> np.ndarray:
    """Run the card's file for ``backend`` in ffmpeg on the first frames of the clip."""
    channels = card.file_for(backend).channels
    out_fmt = "rgb24" if channels == 3 else "gray"
    graph = render_graph([card], GraphOptions(backend=backend, y_form=y_form, precision=precision))
    graph += ",format=rgb24" if channels == 3 else ",format=yuv420p,extractplanes=y"
    cmd = [str(ffmpeg), "-v", "error", "-i", str(frames.clip), "-frames:v", str(frames.count),
           "-filter_complex", graph, "-f", "rawvideo", "-pix_fmt", out_fmt, "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed on {backend}: {proc.stderr.decode()[-400:]}")
    h, w = frames.y.shape[1:3]
    s = card.model_scale
    shape = (-1, h * s, w * s, 3) if channels == 3 else (-1, h * s, w * s)
    return np.frombuffer(proc.stdout, np.uint8).reshape(shape)


def fidelity(got: np.ndarray, want: np.ndarray, min_psnr_db: float | None = None) -> dict[str, float]:
    """Exact up to 8-bit rounding, or (reduced precisions such as bf16, which cannot be)
    at least ``min_psnr_db`` against the source."""
    report = compare_8bit(got, want)
    passes = report.passes if min_psnr_db is None else report.psnr >= min_psnr_db
    return {**report.as_dict(), "passes": bool(passes)}
