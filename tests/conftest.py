"""Shared fixtures: the real ffsr-built ffmpeg and the real data in ../shared/data."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import ffsr_convert  # noqa: F401  (first: keeps triton out, see ffsr_convert/__init__.py)
import numpy as np
import pytest

from ffsr.backends import ALL_BACKENDS
from ffsr.errors import FfsrError
from ffsr.ffmpeg_build import BuildConfig, build_ffmpeg
from ffsr.ffmpeg_tools import FfmpegChoice
from ffsr.image import ImageConfig, build_image, connect
from ffsr.model_card import ModelCard
from ffsr.paths import PROJECT_ROOT, SHARED_DATA_DIR
from ffsr.quality import to_8bit


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA_DIR} (../shared beside the checkout)")
    return SHARED_DATA_DIR


@pytest.fixture(scope="session")
def clips(shared_data: Path) -> Path:
    return shared_data / "clips"


@pytest.fixture(scope="session")
def ffmpeg_bin() -> Path:
    """The ffsr build of FFmpeg with all four backends (built once, then reused).

    FFSR_TEST_FFMPEG runs the suite against another binary, e.g. a build made with
    ``docker/build-ffmpeg.sh --skip-patches 0001,0002,0003,0004`` to see each patch's test fail.
    """
    override = os.environ.get("FFSR_TEST_FFMPEG")
    return Path(override) if override else build_ffmpeg(BuildConfig(backends=ALL_BACKENDS))


@pytest.fixture(scope="session")
def ffprobe_bin(ffmpeg_bin: Path) -> Path:
    return FfmpegChoice(ffmpeg_bin, "test").ffprobe


# ---- a fixed-weight ESPCN and its references in the source frameworks (shared by the
# native-build tests and the Docker image tests; import the functions from conftest).


@pytest.fixture(scope="session")
def espcn_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An ESPCN-shaped x2 net with fixed weights, exported to the formats FFmpeg loads
    (the frozen .pb only where TensorFlow is installed)."""
    pytest.importorskip("torch")
    from ffsr_convert.exporters import export_frozen_pb, export_onnx, export_torchscript
    from ffsr_convert.torch_nets import SmallSR, YModelOnRGB
    from ffsr_convert.weights import fixed_espcn

    d = tmp_path_factory.mktemp("espcn")
    net = fixed_espcn(scale=2)
    y_model = SmallSR(net)
    files = {"onnx": d / "espcn.onnx", "pt": d / "espcn_rgb.pt",
             "pt_unfrozen": d / "espcn_rgb_unfrozen.pt"}
    export_onnx(y_model, files["onnx"], channels=1)
    export_torchscript(YModelOnRGB(y_model, 2), files["pt"], frozen=True)
    export_torchscript(YModelOnRGB(y_model, 2), files["pt_unfrozen"], frozen=False)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return files
    files["pb"] = d / "espcn.pb"
    export_frozen_pb(net, files["pb"])
    return files


def onnx_reference(model: Path, planes: np.ndarray) -> np.ndarray:
    """A 1-channel ONNX model run by onnxruntime on uint8 planes [N,H,W], as 8-bit output."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.stack([to_8bit(sess.run(["y"], {"x": p[None, None].astype(np.float32) / 255})[0][0, 0])
                     for p in planes])


def torch_reference(model: Path, rgb: np.ndarray) -> np.ndarray:
    """A TorchScript RGB model run by torch on uint8 frames [N,H,W,3], as 8-bit output."""
    import torch

    module = torch.jit.load(str(model))
    with torch.no_grad():
        x = torch.from_numpy(rgb.astype(np.float32) / 255).permute(0, 3, 1, 2)
        y = torch.cat([module(f[None]) for f in x]).permute(0, 2, 3, 1).numpy()
    return to_8bit(y)


ZOO = ("espcn", "srcnn", "realesr-animevideov3", "realesr-animevideox2v3", "small-grayrealesrx2")


@pytest.fixture(scope="session")
def zoo_models(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path,
               shared_data: Path) -> dict[str, ModelCard]:
    """All zoo models converted from the shared checkpoints, into a fresh folder that
    FFSR_MODELS_DIR points at for the whole session (conversion verifies each file)."""
    from ffsr.convert_model import convert_zoo_model

    models_dir = tmp_path_factory.mktemp("models")
    os.environ["FFSR_MODELS_DIR"] = str(models_dir)
    os.environ["FFSR_FFMPEG"] = str(ffmpeg_bin)
    return {name: convert_zoo_model(name, models_dir, log=lambda _: None) for name in ZOO}


@pytest.fixture(scope="session")
def docker_api() -> Any:
    """A live engine; scripts/start-dockerd is tried once before giving up."""
    try:
        return connect()
    except FfsrError:
        pass
    started = subprocess.run([str(PROJECT_ROOT / "scripts" / "start-dockerd")], capture_output=True,
                             text=True, timeout=300)
    try:
        return connect()
    except FfsrError as e:
        output = (started.stdout + started.stderr).splitlines()
        said = [ln for ln in output if ln.startswith("start-dockerd:")]
        pytest.skip(f"no Docker engine could be started: {e.message} ({said[-1] if said else 'no output'})")


@pytest.fixture(scope="session")
def cpu_image(docker_api: Any) -> str:
    """The cpu image as the README's `ffsr build-image --flavor cpu` builds it: no options,
    the CA bundle and local wheels come from this machine's pip configuration (reused when
    its inputs are unchanged)."""
    result = build_image(ImageConfig(flavor="cpu"), api=docker_api,
                         on_progress=lambda p: print(p.text) if p.kind == "pip" else None)
    print(f"\n{result.tag}: {'reused' if result.reused else f'built in {result.seconds:.0f}s'}, "
          f"{result.size_gb:.2f} GB")
    return result.tag
