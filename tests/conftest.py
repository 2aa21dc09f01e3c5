"""Shared fixtures: the real ffsr-built ffmpeg and the real data in ../shared/data.

In CI (``CI=true``) the session first checks its prerequisites and stops with one line
naming what is missing, and a skipped test fails the run unless it carries one of the
markers in ALLOWED_SKIP_MARKERS (tests/README.md says why each may skip)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
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
from ffsr.paths import PROJECT_ROOT, SHARED_DATA_DIR, cache_dir, converted_models_dir
from ffsr.quality import to_8bit

# ---- a clean environment: no FFSR_* variables, a fresh cache (XDG_CACHE_HOME) per session
# that holds only links to the real FFmpeg builds and downloaded sources (minutes to make),
# so default ffmpeg discovery and "zoo models convert on first use" run as for a user.

REAL_CACHE = cache_dir()  # read before the session replaces the environment
KEPT_FFSR_VARIABLES = ("FFSR_TEST_FFMPEG",)  # the suite's own switch (ffmpeg_bin), not ffsr's
_SESSION_CACHE = pytest.StashKey[Path]()


def isolated_cache(root: Path) -> Path:
    """``root`` made a cache home for ``XDG_CACHE_HOME``: empty but for ffsr/ffmpeg and
    ffsr/sources, links to the real ones (so builds are reused, never rebuilt by a test)."""
    (root / "ffsr").mkdir(parents=True, exist_ok=True)
    for name in ("ffmpeg", "sources"):
        real = REAL_CACHE / name
        real.mkdir(parents=True, exist_ok=True)
        link = root / "ffsr" / name
        if not link.is_symlink():
            link.symlink_to(real, target_is_directory=True)
    return root


def clean_env(cache_home: Path, **extra: str) -> dict[str, str]:
    """os.environ for a child process with its own cache home (see isolated_cache)."""
    return {**os.environ, "XDG_CACHE_HOME": str(isolated_cache(cache_home)), **extra}


def no_ffsr_build_env(cache_home: Path, models: Path | None = None) -> dict[str, str]:
    """os.environ for a child process whose cache holds converted models (``models``, default
    the session's) but no ffsr build of FFmpeg: ffsr then falls back to the first ffmpeg on
    PATH (Debian's here), as for a user who never ran `ffsr build-ffmpeg`."""
    (cache_home / "ffsr").mkdir(parents=True, exist_ok=True)
    link = cache_home / "ffsr" / "models"
    if not link.is_symlink():
        target = models or converted_models_dir()
        target.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return {**os.environ, "XDG_CACHE_HOME": str(cache_home)}


def pytest_configure(config: pytest.Config) -> None:
    for key in [k for k in os.environ if k.startswith("FFSR_") and k not in KEPT_FFSR_VARIABLES]:
        del os.environ[key]
    home = Path(tempfile.mkdtemp(prefix="ffsr-test-cache-"))
    config.stash[_SESSION_CACHE] = home
    os.environ["XDG_CACHE_HOME"] = str(isolated_cache(home))


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_SESSION_CACHE, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)  # the links go, not what they point at


# Skips CI accepts: the test cannot run on this kind of machine (tests/README.md).
ALLOWED_SKIP_MARKERS = ("needs_gpu", "needs_no_gpu")
CI_MODULES = ("onnxruntime", "openvino", "torch", "tensorflow", "spandrel", "ray", "kubernetes")
CI_SHELLS = ("zsh", "fish")
DEBIAN_FFMPEG = Path("/usr/bin/ffmpeg")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _docker_problem() -> str | None:
    """None when a Docker engine answers (scripts/start-dockerd is tried once), else why not."""
    try:
        connect()
        return None
    except FfsrError:
        pass
    started = subprocess.run([str(PROJECT_ROOT / "scripts" / "start-dockerd")], capture_output=True,
                             text=True, timeout=300)
    try:
        connect()
        return None
    except FfsrError as e:
        said = [ln for ln in (started.stdout + started.stderr).splitlines()
                if ln.startswith("start-dockerd:")]
        return f"{e.message} ({said[-1] if said else 'no output'})"


def ci_missing_prerequisites() -> list[str]:
    """What the whole suite needs in CI and this machine lacks, one short phrase each."""
    missing = []
    if not SHARED_DATA_DIR.is_dir():
        missing.append(f"the test data {SHARED_DATA_DIR} (../shared beside the checkout)")
    lacking = [m for m in CI_MODULES if importlib.util.find_spec(m) is None]
    if lacking:
        missing.append(f"the Python modules {', '.join(lacking)} (scripts/setup)")
    if not DEBIAN_FFMPEG.is_file():
        missing.append(f"Debian's ffmpeg {DEBIAN_FFMPEG} (apt-get install ffmpeg)")
    shells = [s for s in CI_SHELLS if shutil.which(s) is None]
    if shells:
        missing.append(f"the shells {', '.join(shells)} (apt-get install {' '.join(shells)})")
    if (docker := _docker_problem()) is not None:
        missing.append(f"a Docker engine: {docker}")
    return missing


def pytest_sessionstart(session: pytest.Session) -> None:
    if in_ci() and (missing := ci_missing_prerequisites()):
        pytest.exit(f"CI prerequisites missing: {'; '.join(missing)}", returncode=1)


_ci_skips: list[str] = []


def _note_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    _ci_skips.append(f"{report.nodeid}: {reason.removeprefix('Skipped: ')}")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if in_ci() and report.skipped:
        _note_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if (in_ci() and report.skipped and not hasattr(report, "wasxfail")
            and not any(item.get_closest_marker(m) for m in ALLOWED_SKIP_MARKERS)):
        _note_skip(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _ci_skips and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _ci_skips:
        terminalreporter.section("skipped in CI (a failure: install what is missing, or mark the "
                                 "test as tests/README.md says)", red=True)
        for line in _ci_skips:
            terminalreporter.write_line(f"SKIP IS A FAILURE {line}")


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


def safetensors_copy(pth: Path, dest: Path) -> Path:
    """The same weights as ``pth``, saved the way .safetensors checkpoints are shared."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(pth, map_location="cpu", weights_only=True)
    for key in ("params_ema", "params"):
        if isinstance(state, dict) and key in state:
            state = state[key]
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest))
    return dest


ZOO = ("espcn", "srcnn", "realesr-animevideov3", "realesr-animevideox2v3", "small-grayrealesrx2")


@pytest.fixture(scope="session")
def zoo_models(ffmpeg_bin: Path, shared_data: Path) -> dict[str, ModelCard]:
    """All zoo models converted from the shared checkpoints into the session's own (fresh)
    cache, where ffsr finds them by default (conversion verifies each file)."""
    from ffsr.convert_model import convert_zoo_model

    return {name: convert_zoo_model(name, converted_models_dir(), log=lambda _: None) for name in ZOO}


@pytest.fixture(scope="session")
def docker_api() -> Any:
    """A live engine; scripts/start-dockerd is tried once before giving up."""
    if (problem := _docker_problem()) is not None:
        pytest.skip(f"no Docker engine could be started: {problem}")
    return connect()


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
