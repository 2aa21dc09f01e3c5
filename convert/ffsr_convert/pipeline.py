"""convert-model: source checkpoint -> .onnx / TorchScript .pt / frozen .pb + model card,
each output verified before anything appears in the output directory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ffsr.errors import FfsrError
from ffsr.model_card import ModelCard, ModelFile
from ffsr.precision import cpu_has_bf16
from ffsr.zoo import sha256_file
from ffsr_convert import verify
from ffsr_convert.exporters import export_frozen_pb, export_onnx, export_torchscript
from ffsr_convert.sources import LoadedModel

# bf16 cannot be exact; against the f32 source it must still be far below visibility.
BF16_MIN_PSNR_DB = 50.0


@dataclass
class ConvertRequest:
    name: str
    model: LoadedModel
    source: dict[str, Any]
    licence: str
    out_dir: Path
    verify_clip: Path
    ffmpeg: Path | None = None
    ffprobe: Path | None = None
    ffmpeg_backends: frozenset[str] | None = None  # those ffmpeg runs; None: all of them
    frames: int = 2
    backends: tuple[str, ...] = ("onnx", "openvino", "torch", "tensorflow")
    log: Callable[[str], None] = field(default=print)


def _references(model: LoadedModel, frames: verify.Frames, pb: Path | None) -> dict[int, Any]:
    """Source-framework outputs for 1-channel (Y) and 3-channel (RGB) inputs."""
    from ffsr_convert.torch_nets import YModelOnRGB

    refs: dict[int, Any] = {}
    own = model.reference
    if model.color == "y":
        y_in = verify.model_input(frames, 1)
        # TF sources: TensorFlow itself is the reference; others: the source's own run
        # (model.reference) or the eager torch module.
        refs[1] = (verify.run_pb(pb, y_in) if pb else [own(x) for x in y_in] if own
                   else verify.run_torch_module(model.module, y_in))
        wrapper = YModelOnRGB(model.module, model.model_scale).eval()
        refs[3] = verify.run_torch_module(wrapper, verify.model_input(frames, 3))
    else:
        rgb_in = verify.model_input(frames, 3)
        refs[3] = [own(x) for x in rgb_in] if own else verify.run_torch_module(model.module, rgb_in)
    return refs


def convert(req: ConvertRequest) -> ModelCard:
    """Export, verify, then move the files into ``out_dir/name`` (nothing half-written)."""
    from ffsr_convert.torch_nets import YModelOnRGB

    model = req.model
    dest = req.out_dir / req.name
    req.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{req.name}.", dir=req.out_dir) as tmp_name:
        tmp = Path(tmp_name)
        files: dict[str, ModelFile] = {}
        in_ch = 1 if model.color == "y" else 3
        pb = None
        if model.small_net is not None and "tensorflow" in req.backends:
            pb = tmp / f"{req.name}.pb"
            export_frozen_pb(model.small_net, pb)
            files["tensorflow"] = ModelFile("tensorflow", pb.name, "", channels=1,
                                            filters=("dnn_processing", "sr"))
        if "onnx" in req.backends or "openvino" in req.backends:
            onnx_path = tmp / f"{req.name}.onnx"
            export_onnx(model.module, onnx_path, channels=in_ch)
            # OpenVINO reads the ONNX file itself (as fast as its IR here: docs/ffmpeg-dnn.md).
            for backend in ("onnx", "openvino"):
                if backend in req.backends:
                    files[backend] = ModelFile(backend, onnx_path.name, "", channels=in_ch)
        if "torch" in req.backends:
            pt = tmp / f"{req.name}.pt"
            module = model.module if model.color == "rgb" else YModelOnRGB(model.module,
                                                                           model.model_scale)
            export_torchscript(module, pt, frozen=True)
            files["torch"] = ModelFile("torch", pt.name, "", input="", output="", channels=3)

        card = ModelCard(name=req.name, arch=model.arch, scale=model.scale,
                         model_scale=model.model_scale, color=model.color, files=files,
                         source=req.source, licence=req.licence, directory=tmp)
        frames = _frames(req, card)
        refs = _references(model, frames, pb)
        runners = {"onnx": verify.run_onnx, "openvino": verify.run_openvino,
                   "torch": verify.run_torchscript, "tensorflow": verify.run_pb}
        for backend, mf in list(files.items()):
            path = tmp / mf.path
            inputs = verify.model_input(frames, mf.channels)
            want = verify.as_8bit_planes(refs[mf.channels])
            checks: dict[str, Any] = {"frames": frames.count, "clip": frames.clip.name}
            checks["runtime"] = verify.fidelity(
                verify.as_8bit_planes(runners[backend](path, inputs)), want)
            if req.ffmpeg and req.ffmpeg_backends is not None and backend not in req.ffmpeg_backends:
                checks["ffmpeg"] = f"not run (no cached ffmpeg build has the {backend} backend)"
            elif req.ffmpeg:
                forms = ["compact", "sr"] if "sr" in mf.filters else ["compact"]
                for form in forms:
                    got = verify.run_in_ffmpeg(req.ffmpeg, card, backend, frames, y_form=form,
                                               precision="f32" if backend == "openvino" else None)
                    key = "ffmpeg" if form == "compact" else "ffmpeg_sr_filter"
                    checks[key] = verify.fidelity(got, want)
                if backend == "openvino" and cpu_has_bf16():
                    got = verify.run_in_ffmpeg(req.ffmpeg, card, backend, frames, precision="bf16")
                    checks["ffmpeg_bf16"] = verify.fidelity(got, want, min_psnr_db=BF16_MIN_PSNR_DB)
            else:
                checks["ffmpeg"] = "not run (no DNN-capable ffmpeg found)"
            # bf16 below the bar is recorded, not fatal: `--precision auto` keeps f32 for
            # this model (ffsr.precision.bf16_failed); the f32 checks decide the conversion.
            failed = [k for k, v in checks.items()
                      if isinstance(v, dict) and not v["passes"] and k != "ffmpeg_bf16"]
            req.log(f"{backend:<10} {mf.path:<28} " + "  ".join(
                f"{k}: {v['psnr_db']} dB, ≤1 level {100 * v['within_one']:.3f} %"
                for k, v in checks.items() if isinstance(v, dict)))
            if not checks.get("ffmpeg_bf16", {"passes": True})["passes"]:
                req.log(f"{backend:<10} bf16 is below {BF16_MIN_PSNR_DB:.0f} dB for this model: "
                        "--precision auto runs it in f32")
            if failed:
                raise FfsrError(f"Conversion of {req.name} to {backend} does not match its source "
                                f"({', '.join(failed)}: {checks[failed[0]]}); nothing was written.")
            files[backend] = replace(mf, sha256=sha256_file(path), fidelity=checks)
        return publish(replace(card, files=files), tmp, dest)


def publish(card: ModelCard, tmp: Path, dest: Path) -> ModelCard:
    """Write the card and move the verified files into place in one rename."""
    card.save(tmp)
    tmp.chmod(0o755)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    tmp.mkdir()  # the enclosing TemporaryDirectory removes it
    return replace(card, directory=dest)


def _frames(req: ConvertRequest, card: ModelCard) -> verify.Frames:
    if req.ffmpeg and req.ffprobe:
        return verify.load_frames(req.ffmpeg, req.ffprobe, req.verify_clip, req.frames,
                                  card.prescale)
    raise FfsrError("Verification needs ffmpeg to decode frames; run `ffsr build-ffmpeg`.")
