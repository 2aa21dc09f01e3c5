"""Importing a user's ONNX file: check it fits FFmpeg, measure its scale, verify in ffmpeg."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ffsr.errors import FfsrError
from ffsr.model_card import ModelCard, ModelFile
from ffsr.zoo import sha256_file
from ffsr_convert import verify
from ffsr_convert.onnx_input import check_onnx_for_ffmpeg
from ffsr_convert.onnx_probe import probe_onnx
from ffsr_convert.pipeline import publish


def import_onnx(path: Path, name: str, scale: int | None, out_dir: Path, clip: Path,
                ffmpeg: Path | None, ffprobe: Path | None,
                log: Callable[[str], None] = print) -> ModelCard:
    channels, input_name, output_name = check_onnx_for_ffmpeg(path)
    model_scale = probe_onnx(path, channels, input_name).scale
    if scale and scale != model_scale:
        raise FfsrError(f"{path} upscales x{model_scale}, not x{scale}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out_dir) as tmp_name:
        tmp = Path(tmp_name)
        shutil.copyfile(path, tmp / f"{name}.onnx")
        mf = ModelFile("onnx", f"{name}.onnx", sha256_file(path), input=input_name,
                       output=output_name, channels=channels)
        card = ModelCard(name=name, arch="onnx", scale=model_scale, model_scale=model_scale,
                         color="y" if channels == 1 else "rgb", files={"onnx": mf},
                         source={"kind": "file", "path": str(path.resolve()),
                                 "sha256": {path.name: mf.sha256}},
                         licence="unknown", directory=tmp)
        checks: dict[str, object] = {}
        if ffmpeg and ffprobe:
            frames = verify.load_frames(ffmpeg, ffprobe, clip, 2, 1)
            import onnxruntime as ort

            sess = ort.InferenceSession(str(tmp / mf.path), providers=["CPUExecutionProvider"])
            want = verify.as_8bit_planes([sess.run([output_name], {input_name: x})[0]
                                          for x in verify.model_input(frames, channels)])
            checks["ffmpeg"] = verify.fidelity(_in_ffmpeg(path, ffmpeg, card, frames), want)
            log(f"onnx       {mf.path:<28} ffmpeg vs onnxruntime: {checks['ffmpeg']}")
            if not checks["ffmpeg"]["passes"]:  # type: ignore[index]
                raise FfsrError(f"{path} gives different pixels in ffmpeg than in onnxruntime: "
                                f"{checks['ffmpeg']}; nothing was written.")
        card.files["onnx"] = ModelFile(**{**mf.__dict__, "fidelity": checks})
        return publish(card, tmp, out_dir / name)


def _in_ffmpeg(path: Path, ffmpeg: Path, card: ModelCard, frames: verify.Frames) -> np.ndarray:
    """The file run by ffmpeg's ONNX backend; its failure is one sentence, not a traceback."""
    try:
        return verify.run_in_ffmpeg(ffmpeg, card, "onnx", frames)
    except (RuntimeError, ValueError) as e:
        last = [ln.strip() for ln in str(e).splitlines() if ln.strip()][-1:] or ["no output"]
        raise FfsrError(f"{path} runs in onnxruntime but not in ffmpeg's ONNX backend "
                        f"({last[0][:200]}); nothing was written.") from e
