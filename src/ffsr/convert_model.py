"""convert-model orchestration: pick the source, run the ffsr_convert recipe on the host
(when the conversion frameworks are installed), and report what was written."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ffsr.backends import ALL_BACKENDS
from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import capabilities, choose_ffmpeg
from ffsr.model_card import ModelCard
from ffsr.paths import converted_models_dir
from ffsr.runtime import Mount, run_container, writable_staging
from ffsr.zoo import data_dir, get_manifest, sha256_file

FRAMEWORKS = ("torch", "onnx", "onnxruntime")
DEFAULT_VERIFY_CLIP = "clips/carphone_176x144.mp4"


def frameworks_missing() -> list[str]:
    return [m for m in FRAMEWORKS if importlib.util.find_spec(m) is None]


def use_image(runtime: str) -> bool:
    """'auto' converts on the host when the frameworks are installed, else in the image."""
    if runtime not in ("auto", "local", "docker"):
        raise FfsrError(f"Unknown runtime '{runtime}'; choose auto, local or docker.")
    missing = frameworks_missing()
    if runtime == "local" and missing:
        raise FfsrError(f"Conversion needs {', '.join(missing)} on this host: "
                        "`pip install 'ffsr[convert]'`, or use --runtime docker (the ffsr image).")
    return runtime == "docker" or (runtime == "auto" and bool(missing))


def convert_in_image(name: str, args: list[str], out_dir: Path, mounts: list[Mount],
                     image: str | None, log: Callable[[str], None]) -> ModelCard:
    """Run `ffsr convert-model` inside the ffsr image, writing into ``out_dir`` on the host."""
    from ffsr.image import default_tag
    from ffsr.model_card import find_card

    out_dir.mkdir(parents=True, exist_ok=True)
    if data_dir().is_dir():
        mounts = [*mounts, Mount(data_dir().resolve(), "/data", True)]
    with writable_staging(out_dir) as staging:
        rc, err = run_container(
            image or default_tag("cpu"),
            ["ffsr", "convert-model", *args, "--out-dir", "/out", "--runtime", "local"],
            [*mounts, Mount(staging, "/out", False)], gpu=False,
            on_stdout=lambda lines: list(map(log, lines)),
            environment={"FFSR_DATA_DIR": "/data", "HOME": "/tmp"})
        if rc != 0:
            last = [ln for ln in err.splitlines() if ln.startswith("error:")]
            raise FfsrError(last[-1].removeprefix("error:").strip() if last else
                            f"Conversion inside the image failed: {err.strip()[-300:]}")
        dest = out_dir / name
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging / name, dest)
    return find_card(name, out_dir)


def _ffmpeg_for_verification(backends: tuple[str, ...] = ("onnx",)
                             ) -> tuple[Path | None, Path | None, frozenset[str]]:
    """The ffmpeg that verifies the converted files, and which of ``backends`` it has: the
    one `ffsr upscale --backend B` picks for all of them when there is one (the full build),
    else the default one (the lean build verifies onnx and openvino only)."""
    for needs in (backends, ()):
        try:
            choice = choose_ffmpeg(needs)
        except FfsrError:
            continue
        has = capabilities(choice.ffmpeg).dnn_backends & set(backends)
        if has == set(backends) or (has and not needs):
            return choice.ffmpeg, choice.ffprobe, frozenset(has)
    return None, None, frozenset()


def _verify_clip(clip: Path | None) -> Path:
    path = clip or data_dir() / DEFAULT_VERIFY_CLIP
    if not path.is_file():
        raise FfsrError(f"Verification clip not found: {path} (pass --verify-clip).")
    return path


def convert_zoo_model(name: str, out_dir: Path | None = None, *, backends: tuple[str, ...] =
                      ALL_BACKENDS, verify_clip: Path | None = None,
                      runtime: str = "auto", image: str | None = None,
                      log: Callable[[str], None] = print) -> ModelCard:
    """Convert a zoo model from its pinned checkpoint (sha256 checked first)."""
    manifest = get_manifest(name)
    manifest.verify_source()
    if use_image(runtime):
        return convert_in_image(name, [name, "--backends", ",".join(backends)],
                                out_dir or converted_models_dir(), [], image, log)
    from ffsr_convert.sources import load_source

    # TF checkpoints and waifu2x .npz do not say which network they hold; spandrel detects.
    told = manifest.arch in ("espcn", "srcnn") or manifest.source_path.suffix == ".npz"
    model = load_source(manifest.source_path, manifest.arch if told else None, manifest.scale)
    if model.color != manifest.color:
        raise FfsrError(f"{name}: the checkpoint is a {model.color.upper()} model but the manifest "
                        f"says {manifest.color.upper()}.")
    source: dict[str, object] = {"kind": "zoo", **manifest.source}
    return _convert(name, model, source, manifest.source["licence"], out_dir, backends,
                    verify_clip, log)


def convert_checkpoint(path: Path, *, name: str | None = None, arch: str | None = None,
                       scale: int | None = None, out_dir: Path | None = None,
                       backends: tuple[str, ...] = ALL_BACKENDS,
                       verify_clip: Path | None = None, licence: str = "unknown",
                       runtime: str = "auto", image: str | None = None,
                       log: Callable[[str], None] = print, tensors: tuple[str | None, str | None]
                       = (None, None)) -> ModelCard:
    """Convert a user's checkpoint (.ckpt directory, .pth, .safetensors, .onnx or a frozen .pb;
    ``tensors``: a .pb's input placeholder and output op, where it has several)."""
    if not path.exists() and not Path(str(path) + ".index").exists():
        raise FfsrError(f"Checkpoint not found: {path}")
    model_name = name or path.stem.split(".")[0] or path.name
    if use_image(runtime):
        src = path.resolve()
        args = ["--checkpoint", f"/src/{src.name}", "--name", model_name,
                "--backends", ",".join(backends)]
        args += [f"--arch={arch}"] if arch else []
        args += [f"--scale={scale}"] if scale else []
        args += [f"--input-tensor={tensors[0]}"] if tensors[0] else []
        args += [f"--output-tensor={tensors[1]}"] if tensors[1] else []
        return convert_in_image(model_name, args, out_dir or converted_models_dir(),
                                [Mount(src.parent, "/src", True)], image, log)
    if path.suffix == ".onnx":
        from ffsr_convert.onnx_import import import_onnx

        return import_onnx(path, model_name, scale, out_dir or converted_models_dir(),
                           _verify_clip(verify_clip), *_ffmpeg_for_verification()[:2], log=log)
    if path.suffix == ".pb":
        return _import_pb(path, model_name, scale, out_dir, backends, verify_clip, log, tensors)
    if tensors != (None, None):
        raise FfsrError("--input-tensor/--output-tensor name the tensors of a frozen TensorFlow .pb only.")
    from ffsr_convert.sources import load_source

    model = load_source(path, arch, scale)
    source: dict[str, object] = {"kind": "file", "path": str(path.resolve()),
              "sha256": {path.name: sha256_file(path)} if path.is_file() else {}}
    return _convert(model_name, model, source, licence, out_dir, backends, verify_clip, log)


def _import_pb(path: Path, name: str, scale: int | None, out_dir: Path | None,
               backends: tuple[str, ...], verify_clip: Path | None,
               log: Callable[[str], None], tensors: tuple[str | None, str | None]) -> ModelCard:
    """A frozen TF graph is kept for the tensorflow backend only (tf2onnx is not installed)."""
    if "tensorflow" not in backends:
        raise FfsrError(f"{path} is a frozen TensorFlow graph: ffsr keeps it for the tensorflow "
                        f"backend only (no tf2onnx to convert it to {', '.join(backends)}).")
    from ffsr_convert.pb_import import import_pb

    ffmpeg, ffprobe, has = _ffmpeg_for_verification(("tensorflow",))
    return import_pb(path, name, scale, out_dir or converted_models_dir(),
                     _verify_clip(verify_clip), ffmpeg, ffprobe, "tensorflow" in has, log=log,
                     input=tensors[0], output=tensors[1])


def _convert(name: str, model: object, source: dict[str, object], licence: str,
             out_dir: Path | None, backends: tuple[str, ...], verify_clip: Path | None,
             log: Callable[[str], None]) -> ModelCard:
    from ffsr_convert.pipeline import ConvertRequest, convert
    from ffsr_convert.sources import LoadedModel

    assert isinstance(model, LoadedModel)
    ffmpeg, ffprobe, ffmpeg_backends = _ffmpeg_for_verification(backends)
    req = ConvertRequest(name=name, model=model, source=source, licence=licence,
                         out_dir=out_dir or converted_models_dir(),
                         verify_clip=_verify_clip(verify_clip), ffmpeg=ffmpeg, ffprobe=ffprobe,
                         ffmpeg_backends=ffmpeg_backends, backends=backends, log=log)
    return convert(req)
