"""Quality of a model on still images (DESIGN.md §5): bicubic-downscale the original,
upscale it with the model in ffmpeg (and with bicubic/lanczos), PSNR/SSIM on Y."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.model_card import ModelCard
from ffsr.quality import psnr, rgb_to_y, shave, ssim

BASELINES = ("bicubic", "lanczos")


@dataclass(frozen=True)
class ImageScore:
    image: str
    method: str
    psnr: float
    ssim: float


def image_size(ffprobe: Path, path: Path) -> tuple[int, int]:
    out = subprocess.run([str(ffprobe), "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True)
    w, h = out.stdout.strip().split(",")[:2]
    return int(w), int(h)


def evaluate(ffmpeg: Path, ffprobe: Path, images: Sequence[Path], scale: int,
             cards: Sequence[ModelCard], backend: str = "onnx") -> list[ImageScore]:
    """Scores of each card and of the bicubic/lanczos baselines on each image.

    One ffmpeg run per image: crop to a multiple of the scale, bicubic-downscale, then
    every method on the same low-resolution frame (split), each to its own raw output.
    """
    methods: dict[str, str] = {b: f"scale=iw*{scale}:ih*{scale}:flags={b}" for b in BASELINES}
    for card in cards:
        methods[card.name] = render_graph([card], GraphOptions(backend=backend,
                                                               yuv_format="yuv444p"))
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for image in images:
            w, h = image_size(ffprobe, image)
            w, h = w - w % scale, h - h % scale
            n = len(methods)
            parts = [f"[0:v]crop={w}:{h}:0:0,format=rgb24,split[orig][hr]",
                     f"[hr]scale={w // scale}:{h // scale}:flags=bicubic,split={n}"
                     + "".join(f"[lr{i}]" for i in range(n))]
            parts += [f"[lr{i}]{vf},format=rgb24[up{i}]" for i, vf in enumerate(methods.values())]
            outs = ["-map", "[orig]", "-f", "rawvideo", "-pix_fmt", "rgb24", f"{tmp}/orig.raw"]
            for i in range(n):
                outs += ["-map", f"[up{i}]", "-f", "rawvideo", "-pix_fmt", "rgb24", f"{tmp}/{i}.raw"]
            proc = subprocess.run([str(ffmpeg), "-v", "error", "-y", "-i", str(image),
                                   "-filter_complex", ";".join(parts), *outs], capture_output=True)
            if proc.returncode != 0:
                raise RuntimeError(f"ffmpeg failed on {image}: {proc.stderr.decode()[-400:]}")

            def load(name: str, w: int = w, h: int = h) -> np.ndarray:
                return np.fromfile(f"{tmp}/{name}.raw", np.uint8).reshape(h, w, 3)

            y_ref = shave(rgb_to_y(load("orig")), scale)
            for i, method in enumerate(methods):
                y = shave(rgb_to_y(load(str(i))), scale)
                scores.append(ImageScore(image.stem, method, psnr(y, y_ref), ssim(y, y_ref)))
    return scores


def mean_by_method(scores: Sequence[ImageScore]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for method in dict.fromkeys(s.method for s in scores):
        sel = [s for s in scores if s.method == method]
        out[method] = (float(np.mean([s.psnr for s in sel])), float(np.mean([s.ssim for s in sel])))
    return out
