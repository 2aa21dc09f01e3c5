"""GPU requests are checked before any work, per runtime, and refused in one sentence that
names the fix. This machine has no GPU and a Docker engine without NVIDIA's runtime, so the
refusals below are the real ones it gives; output formats a machine without a GPU cannot
produce (nvidia-smi, a GPU host's `docker info`) are recorded text in their real format."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env, isolated_cache

from ffsr.docker_gpu import (
    TOOLKIT_FIX,
    EngineGpu,
    device_requests,
    engine_gpu_support,
    gpu_starts,
    image_gpu,
    require_cuda_image,
    require_docker_gpu,
    start_error,
)
from ffsr.errors import FfsrError
from ffsr.gpu import (
    cuda_driver_minimum,
    cuda_version_from_freeze,
    driver_at_least,
    hidden_by_visible_devices,
    host_gpus,
    missing_libraries,
    nvenc_failure,
    parse_smi_gpus,
    required_driver,
    resolved_libraries,
    smi_failure,
)
from ffsr.gpu_report import nvenc_argv
from ffsr.paths import PROJECT_ROOT

NO_GPU = not host_gpus().ok


def needs_no_gpu(test: Any) -> Any:
    """Skipped where the host has a GPU (the refusals do not apply there); CI allows the skip."""
    skip = pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU: the refusals do not apply")
    return pytest.mark.needs_no_gpu(skip(test))


# `nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader,nounits`
SMI_TWO_H100 = """0, NVIDIA H100 80GB HBM3, 570.133.20, 81559
1, NVIDIA H100 80GB HBM3, 570.133.20, 81559
"""
SMI_NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                 "Make sure that the latest NVIDIA driver is installed and running.\n\n")
SMI_MISMATCH = "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.65\n"
# `docker info` (API /info) of a Docker 28 host after `nvidia-ctk runtime configure` and
# `nvidia-ctk cdi generate`, the fields ffsr reads.
GPU_HOST_INFO: dict[str, Any] = {
    "Runtimes": {"io.containerd.runc.v2": {"path": "runc",
                                           "status": {"org.opencontainers.runtime-spec.features": "{}"}},
                 "nvidia": {"path": "nvidia-container-runtime"},
                 "runc": {"path": "runc"}},
    "DefaultRuntime": "runc",
    "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"],
    "DiscoveredDevices": [{"Source": "cdi", "ID": "nvidia.com/gpu=0"},
                          {"Source": "cdi", "ID": "nvidia.com/gpu=GPU-4d1c2f7e-8a0b-1c2d-3e4f-5a6b7c8d9e0f"},
                          {"Source": "cdi", "ID": "nvidia.com/gpu=all"}],
}
CDI_ONLY_INFO = {**GPU_HOST_INFO, "Runtimes": {"runc": {"path": "runc"}}}
CUDA_FREEZE = ("nvidia-cublas==13.0.2.14\nnvidia-cuda-runtime==13.0.96\nnvidia-cudnn-cu13==9.13.0.50\n"
               "onnx==1.23.2\n")


# ---------------------------------------------------------------- pure parsing


def test_nvidia_smi_rows_parse() -> None:
    gpus = parse_smi_gpus(SMI_TWO_H100)
    assert [(g.index, g.name, g.driver, g.memory_mib) for g in gpus] == [
        (0, "NVIDIA H100 80GB HBM3", "570.133.20", 81559), (1, "NVIDIA H100 80GB HBM3", "570.133.20", 81559)]
    assert parse_smi_gpus(SMI_NO_DRIVER) == []


def test_nvidia_smi_failures_name_the_fix() -> None:
    assert "reboot, or reinstall the NVIDIA driver" in smi_failure(SMI_NO_DRIVER)
    assert smi_failure(SMI_MISMATCH).endswith("waiting for a reboot): reboot")


def test_driver_versions_against_cuda_and_nvenc() -> None:
    assert driver_at_least("580.65.06", "580.65.06") and driver_at_least("590.44.01", "580.65.06")
    assert not driver_at_least("575.57.08", "580.65.06")
    assert cuda_version_from_freeze(CUDA_FREEZE.splitlines()) == "13.0"
    assert cuda_version_from_freeze(["nvidia-cuda-runtime-cu12==12.8.90"]) == "12.8"
    assert cuda_version_from_freeze(["onnxruntime==1.31.1"]) is None
    assert cuda_driver_minimum("13.2") == "580.65.06" and cuda_driver_minimum("12.8") == "525.60.13"
    # --device cuda with NVENC needs the newer of the two; NVENC alone only the NVENC driver.
    assert required_driver("13.0", "cuda", "hevc_nvenc") == ("580.65.06", "CUDA 13.0")
    assert required_driver("12.4", "cuda", "hevc_nvenc") == ("530.41.03", "NVENC")
    assert required_driver(None, "cpu", "h264_nvenc") == ("530.41.03", "NVENC")


def test_cuda_visible_devices_that_hide_every_gpu() -> None:
    assert hidden_by_visible_devices({}, 2) is None
    assert hidden_by_visible_devices({"CUDA_VISIBLE_DEVICES": "1"}, 2) is None
    assert hidden_by_visible_devices({"CUDA_VISIBLE_DEVICES": "GPU-4d1c2f7e"}, 1) is None
    assert hidden_by_visible_devices({"CUDA_VISIBLE_DEVICES": "0,5"}, 2) is None  # 0 stays visible
    for value in ("", "-1", "2", "NoDevFiles"):
        said = hidden_by_visible_devices({"CUDA_VISIBLE_DEVICES": value}, 2)
        assert said and "hides every GPU" in said and "from 0 to 1" in said


def test_ldd_output_parses() -> None:
    real = subprocess.run(["ldd", "/bin/ls"], capture_output=True, text=True).stdout
    assert "libc.so.6" in resolved_libraries(real) and missing_libraries(real) == []
    recorded = ("\tlibcudart.so.13 => not found\n"
                "\tlibcublas.so.13 => not found\n"
                "\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f0c1a200000)\n")
    assert missing_libraries(recorded) == ["libcudart.so.13", "libcublas.so.13"]


def test_engine_gpu_support_from_docker_info() -> None:
    gpu_host = engine_gpu_support(GPU_HOST_INFO)
    assert gpu_host.ok and gpu_host.runtimes == ("nvidia",) and "nvidia.com/gpu=all" in gpu_host.cdi_devices
    cdi = engine_gpu_support(CDI_ONLY_INFO)
    assert cdi.ok and cdi.runtimes == ()
    assert not engine_gpu_support({"Runtimes": {"runc": {"path": "runc"}}, "CDISpecDirs": None}).ok


def test_device_requests_ask_for_video_and_use_cdi_when_that_is_all() -> None:
    [runtime] = device_requests(engine_gpu_support(GPU_HOST_INFO))
    assert runtime["Count"] == -1 and runtime["Capabilities"] == [["gpu", "compute", "utility", "video"]]
    [cdi] = device_requests(engine_gpu_support(CDI_ONLY_INFO))
    assert cdi["Driver"] == "cdi" and cdi["DeviceIDs"] == ["nvidia.com/gpu=all"]


def test_nvenc_failures_name_the_fix() -> None:
    # Lines FFmpeg's nvenc.c and the ffnvcodec loader print.
    assert "too old for NVENC: update it to version 570.0" in (nvenc_failure(
        "[h264_nvenc @ 0x55d] Driver does not support the required nvenc API version. "
        "Required: 13.0 Found: 12.2\n"
        "[h264_nvenc @ 0x55d] The minimum required Nvidia driver for nvenc is 570.0 or newer\n") or "")
    assert "no NVENC video encoder" in (nvenc_failure("[hevc_nvenc @ 0x5] No capable devices found") or "")
    assert "libnvidia-encode" in (nvenc_failure("[h264_nvenc @ 0x5] Cannot load libnvidia-encode.so.1") or "")
    assert nvenc_failure("frame=    1 fps=0.0\n") is None


# ---------------------------------------------------------------- this host, for real


def ffsr(*args: str, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=300)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@needs_no_gpu
def test_local_cuda_is_refused_before_any_work(tmp_path: Path) -> None:
    # The input does not even exist: the GPU is checked first.
    line = one_error_line(ffsr("upscale", str(tmp_path / "missing.mp4"), "-m", "espcn", "--device",
                               "cuda", "-o", str(tmp_path / "o.mp4")))
    assert "--device cuda needs an NVIDIA GPU, but" in line and "NVIDIA driver" in line
    assert list(tmp_path.iterdir()) == []


@needs_no_gpu
@pytest.mark.parametrize("encoder", ["h264_nvenc", "hevc_nvenc", "av1_nvenc"])
def test_nvenc_without_gpu_is_refused_before_decoding(tmp_path: Path, encoder: str) -> None:
    line = one_error_line(ffsr("upscale", str(tmp_path / "missing.mp4"), "-m", "espcn", "--encoder",
                               encoder, "-o", str(tmp_path / "o.mp4")))
    assert f"--encoder {encoder} needs an NVIDIA GPU" in line and "530.41.03" in line


@needs_no_gpu
def test_nvenc_failure_reads_a_real_ffmpeg_log() -> None:
    debian = Path("/usr/bin/ffmpeg")
    if not debian.exists():
        pytest.skip("Debian's ffmpeg (built with NVENC) is not installed")
    proc = subprocess.run(nvenc_argv(str(debian), "h264_nvenc"), capture_output=True, text=True)
    if "Unknown encoder" in proc.stderr:
        pytest.skip("this ffmpeg has no h264_nvenc")
    assert proc.returncode != 0
    assert nvenc_failure(proc.stderr) == ("no NVIDIA driver is loaded (libcuda.so.1 is missing): "
                                          "install the NVIDIA driver")


def test_backend_cuda_libraries_are_checked_in_the_real_binary(ffmpeg_bin: Path) -> None:
    from ffsr.gpu import _ldd as ldd
    from ffsr.gpu import backend_cuda_problem

    libs = resolved_libraries(ldd(ffmpeg_bin))
    torch_problem = backend_cuda_problem(ffmpeg_bin, "torch")
    if "libtorch_cpu.so" not in libs or "libtorch_cuda.so" in libs:
        assert torch_problem is None  # no torch backend, or PyPI's CUDA torch (loads its CUDA half)
    else:
        assert torch_problem and "LibTorch has no CUDA" in torch_problem
    ort = Path(next(p for n, p in libs.items() if n.startswith("libonnxruntime.so"))).resolve()
    onnx_problem = backend_cuda_problem(ffmpeg_bin, "onnx")
    if not (ort.parent / "libonnxruntime_providers_cuda.so").exists():
        assert onnx_problem and "no CUDA provider (the CPU onnxruntime wheel)" in onnx_problem
        assert "pip install 'onnxruntime-gpu[cuda,cudnn]'" in onnx_problem


# ---------------------------------------------------------------- the real Docker engine


def _import_image(api: Any, tag: str, flavor: str, freeze: str) -> str:
    """A few-byte image with ffsr's labels and pip freeze (no build: the checks read only these)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = freeze.encode()
        info = tarfile.TarInfo("opt/ffsr/python-packages.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    repo, _, version = tag.partition(":")
    api.import_image_from_data(buf.getvalue(), repository=repo, tag=version,
                               changes=[f"LABEL org.ffsr.flavor={flavor}"])
    return tag


@pytest.fixture(scope="module")
def engine(docker_api: Any) -> EngineGpu:
    support = engine_gpu_support(docker_api.info())
    if support.ok:
        pytest.skip(f"this engine can give containers a GPU ({support.describe()})")
    return support


@pytest.fixture(scope="module")
def labelled_images(docker_api: Any, engine: EngineGpu) -> Iterator[dict[str, str]]:
    images = {"cuda": _import_image(docker_api, "ffsr-gpu-test:cuda", "cuda", CUDA_FREEZE),
              "cpu": _import_image(docker_api, "ffsr-gpu-test:cpu", "cpu", "onnxruntime==1.31.1\n")}
    yield images
    for tag in images.values():
        docker_api.remove_image(tag, force=True)


def containers(api: Any) -> int:
    return len(api.containers(all=True))


@pytest.mark.needs_no_gpu  # the `engine` fixture skips where the engine can give a GPU
def test_docker_gpu_upscale_is_one_sentence_and_leaves_nothing(docker_api: Any, engine: EngineGpu,
                                                              clips: Path, tmp_path: Path) -> None:
    """The command of issue 16: two tracebacks before, one sentence and exit 1 now (the engine
    is asked first, so the cuda image need not exist)."""
    before = containers(docker_api)
    line = one_error_line(ffsr("upscale", str(clips / "carphone_176x144.mp4"), "-m", "espcn", "--runtime",
                               "docker", "--image", "ffsr:9.0.2-cuda", "--device", "cuda", "-o",
                               "out.mp4", cwd=tmp_path))
    assert "--device cuda asks Docker for a GPU, but this Docker engine has no NVIDIA GPU runtime" in line
    assert "install the NVIDIA Container Toolkit and configure Docker for it" in line
    assert list(tmp_path.iterdir()) == [] and containers(docker_api) == before


@pytest.mark.needs_no_gpu  # the `engine` fixture skips where the engine can give a GPU
def test_engine_refuses_the_gpu_container_in_one_sentence(docker_api: Any, engine: EngineGpu,
                                                         labelled_images: dict[str, str]) -> None:
    """With an image present the engine itself is asked (it may serve GPUs through the NVIDIA
    hook without a runtime entry); this engine's real refusal becomes the same sentence."""
    before = containers(docker_api)
    assert gpu_starts(docker_api, labelled_images["cuda"], engine) is False
    with pytest.raises(FfsrError, match=r"^--encoder hevc_nvenc asks Docker for a GPU, but this Docker "
                                        r"engine has no NVIDIA GPU runtime.*NVIDIA Container Toolkit"):
        require_docker_gpu(labelled_images["cuda"], "cpu", "hevc_nvenc", api=docker_api)
    assert containers(docker_api) == before


@pytest.mark.needs_no_gpu  # the `engine` fixture skips where the engine can give a GPU
def test_run_container_turns_the_start_refusal_into_a_sentence(docker_api: Any, engine: EngineGpu,
                                                               labelled_images: dict[str, str]) -> None:
    from docker.errors import APIError

    from ffsr.runtime import run_container

    before = containers(docker_api)
    with pytest.raises(FfsrError) as caught:
        run_container(labelled_images["cuda"], ["/bin/true"], [], gpu=True)
    assert caught.value.message == f"This Docker engine has no NVIDIA GPU runtime: {TOOLKIT_FIX}."
    assert containers(docker_api) == before
    # The engine's own words, for the record: what start_error reads.
    assert start_error(APIError('could not select device driver "" with capabilities: [[gpu]]')) is not None


@pytest.mark.needs_no_gpu  # the `engine` fixture skips where the engine can give a GPU
def test_image_flavour_and_cuda_come_from_the_image(docker_api: Any, labelled_images: dict[str, str]) -> None:
    cuda = image_gpu(docker_api, labelled_images["cuda"])
    assert (cuda.flavor, cuda.cuda) == ("cuda", "13.0")
    assert require_cuda_image(docker_api, labelled_images["cuda"], "--device cuda") == cuda
    with pytest.raises(FfsrError, match=r"is the cpu flavour of the ffsr image: build the cuda flavour "
                                        r"with `ffsr build-image --flavor cuda`"):
        require_cuda_image(docker_api, labelled_images["cpu"], "--device cuda")
    with pytest.raises(FfsrError, match=r"not found: build it with `ffsr build-image --flavor cuda`"):
        require_cuda_image(docker_api, "ffsr-gpu-test:absent", "--device cuda")


@pytest.mark.needs_no_gpu  # the `engine` fixture skips where the engine can give a GPU
def test_doctor_reports_no_gpu_runtime_in_docker(docker_api: Any, engine: EngineGpu) -> None:
    proc = ffsr("doctor")
    lines = {ln.split()[1]: ln for ln in proc.stderr.splitlines() if ln.startswith(("ok ", "no "))}
    docker_gpu = next(ln for ln in proc.stderr.splitlines() if "docker gpu" in ln)
    assert docker_gpu.startswith("no") and f"no GPU runtime in Docker: {TOOLKIT_FIX}" in docker_gpu
    assert "gpu" in lines and lines["gpu"].startswith("no" if NO_GPU else "ok")
    assert any("cuda image" in ln for ln in proc.stderr.splitlines())


# ---------------------------------------------------------------- benchmarks/gpu.py


BENCH = PROJECT_ROOT / "benchmarks" / "gpu.py"


@needs_no_gpu
def test_gpu_benchmark_without_gpu_says_so_in_one_line() -> None:
    proc = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("benchmarks/gpu.py: no usable GPU: --device cuda needs an NVIDIA GPU")


def test_parse_memory_used() -> None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        from gpu import parse_memory_used
    finally:
        sys.path.remove(str(BENCH.parent))
    assert parse_memory_used("4\n") == [4] and parse_memory_used("  71234\n3\n") == [71234, 3]
    assert parse_memory_used("No devices were found\n") == []


@pytest.fixture(scope="module")
def gpu_bench_models(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path, shared_data: Path) -> Path:
    """A cache home of its own with the two benchmark models converted once into it."""
    from ffsr.convert_model import convert_zoo_model

    home = isolated_cache(tmp_path_factory.mktemp("gpu-bench-cache"))
    for name in ("espcn", "realesr-animevideov3"):
        convert_zoo_model(name, home / "ffsr" / "models", backends=("onnx", "torch"), log=lambda _: None)
    return home


def test_gpu_benchmark_dry_run_on_the_cpu(ffmpeg_bin: Path, gpu_bench_models: Path) -> None:
    """Everything up to the GPU: input clips, ffsr end to end per backend, the model alone in
    PyTorch, the report; small frames so it is quick on 2 cores."""
    env = clean_env(gpu_bench_models)  # each backend's run picks a build that has it
    backends = {"onnx", "torch"}
    proc = subprocess.run([sys.executable, str(BENCH), "--device", "cpu", "--frames", "3"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    paths = {(ln.split("|")[1].strip(), ln.split("|")[3].strip()) for ln in table}
    assert backends, "the test ffmpeg has neither onnx nor torch"
    for model, size in (("realesr-animevideov3", "96×54"), ("espcn", "192×108")):
        assert all((model, f"ffsr {b} → libx264") in paths for b in backends), paths
        assert (model, "model alone, PyTorch fp32") in paths
        assert any(f"| {model} | {size} |" in ln for ln in table)
    for ln in table:
        if "ffsr" in ln:
            assert ln.split("|")[4].strip() == "3", ln  # every frame came out
