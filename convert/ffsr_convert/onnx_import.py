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
from ffsr_convert.onnx_pad import pad_plan, wrap_pad_crop
from ffsr_convert.onnx_probe import OnnxShape, probe_onnx
from ffsr_convert.pipeline import publish


def import_onnx(path: Path, name: str, scale: int | None, out_dir: Path, clip: Path,
                ffmpeg: Path | None, ffprobe: Path | None,
                log: Callable[[str], None] = print) -> ModelCard:
    channels, input_name, output_name = check_onnx_for_ffmpeg(path)
    shape = probe_onnx(path, channels, input_name)
    model_scale = shape.scale
    padded = shape.multiple > 1 or shape.border > 0
    pad, _ = pad_plan(shape, path)  # an unpaddable border is refused before anything is written
    if scale and scale != model_scale:
        raise FfsrError(f"{path} upscales x{model_scale}, not x{scale}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out_dir) as tmp_name:
        tmp = Path(tmp_name)
        dest = tmp / f"{name}.onnx"
        if padded:
            wrap_in_padding(path, dest, shape, channels, input_name, pad, log)
        else:
            shutil.copyfile(path, dest)
        mf = ModelFile("onnx", f"{name}.onnx", sha256_file(dest), input=input_name,
                       output=output_name, channels=channels)
        card = ModelCard(name=name, arch="onnx", scale=model_scale, model_scale=model_scale,
                         color="y" if channels == 1 else "rgb", files={"onnx": mf},
                         source={"kind": "file", "path": str(path.resolve()),
                                 "sha256": {path.name: sha256_file(path)},
                                 "measured": {"size_multiple": shape.multiple,
                                              "border": shape.border, "edge_pad": pad}},
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


def wrap_in_padding(path: Path, dest: Path, shape: OnnxShape, channels: int, input_name: str,
                    pad: int, log: Callable[[str], None]) -> None:
    """Write the padded file and prove it is a plain same-size upscaler now."""
    wrap_pad_crop(path, dest, shape)
    after = probe_onnx(dest, channels, input_name)
    if after != OnnxShape(shape.scale, 1, 0):
        raise FfsrError(f"{path} still needs {after} after ffsr padded it; nothing was written.")
    log(f"padding    {path.name}: edge-padded to multiples of {shape.multiple} and by {pad} px "
        f"per edge (border {shape.border}), output cropped to x{shape.scale} the frame")
