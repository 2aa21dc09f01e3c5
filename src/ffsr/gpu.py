"""GPU checks on this host, made before any work: is an NVIDIA driver loaded, does it see a
GPU that CUDA_VISIBLE_DEVICES leaves visible, is it new enough for the CUDA (and NVENC)
that will run, and can the backend's CUDA library load.

A GPU job that fails late wastes a decode and a model load and ends in a log line few
people can read, so each check raises one sentence naming the fix. Parsing (nvidia-smi's
CSV, pip freeze lines, version strings, ldd output) is kept in pure functions, tested on
recorded real output; the probes around them only run the programs. This module does not
know about Docker (see docker_gpu) and imports nothing that does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.versions import installed_versions, pinned

NVENC_ENCODERS = ("h264_nvenc", "hevc_nvenc", "av1_nvenc")
CUDA_DRIVER_MINIMUM = {13: "580.65.06", 12: "525.60.13", 11: "450.80.02"}
"""Linux driver each CUDA major release needs (minor version compatibility: any 13.x runs
on the 13.0 driver), from NVIDIA's CUDA compatibility table."""
NVENC_DRIVER_MINIMUM = {"12.0": "520.56.06", "12.1": "530.41.03", "12.2": "550.54.14",
                        "13.0": "570.0"}
"""Linux driver each NVENC API (the ffnvcodec headers FFmpeg is built with) needs, as
FFmpeg's nvenc.c states it."""
CUDA_RUNTIME_DISTRIBUTIONS = ("nvidia-cuda-runtime", "nvidia-cuda-runtime-cu13",
                              "nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu11")
DRIVER_INSTALL = "install the NVIDIA driver"
SMI_QUERY = ("index,name,driver_version,memory.total", "csv,noheader,nounits")


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as nvidia-smi reports it."""

    index: int
    name: str
    driver: str
    memory_mib: int


@dataclass(frozen=True)
class HostGpus:
    """What this host's NVIDIA driver says: ``problem`` is a sentence when it is unusable."""

    gpus: tuple[GpuInfo, ...] = ()
    driver: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and bool(self.gpus)


# ---------------------------------------------------------------- pure parsing


def version_tuple(version: str) -> tuple[int, ...]:
    """'580.65.06' -> (580, 65, 6); anything after the numbers is ignored."""
    m = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(p) for p in m.group(0).split(".")) if m else ()


def driver_at_least(driver: str, minimum: str) -> bool:
    return version_tuple(driver) >= version_tuple(minimum)


def parse_smi_gpus(text: str) -> list[GpuInfo]:
    """Rows of ``nvidia-smi --query-gpu=index,name,driver_version,memory.total
    --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        memory = int(parts[3]) if parts[3].isdigit() else 0
        gpus.append(GpuInfo(int(parts[0]), parts[1], parts[2], memory))
    return gpus


def smi_failure(output: str) -> str:
    """Why nvidia-smi failed, as the fix the user needs."""
    if "couldn't communicate with the NVIDIA driver" in output:
        return ("nvidia-smi cannot talk to the NVIDIA driver (not loaded, or a driver update is "
                "waiting for a reboot): reboot, or reinstall the NVIDIA driver")
    if "Driver/library version mismatch" in output:
        return ("the NVIDIA kernel driver and its libraries have different versions (a driver "
                "update is waiting for a reboot): reboot")
    if "No devices were found" in output:
        return "the NVIDIA driver found no GPU: check that the GPU is seated and enabled"
    last = next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip()), "no output")
    return f"nvidia-smi failed ({last}): reinstall the NVIDIA driver"


def cuda_version_from_freeze(lines: Iterable[str]) -> str | None:
    """The CUDA runtime (major.minor) a Python environment ships, from ``pip freeze`` lines
    (``nvidia-cuda-runtime==13.0.96``, ``nvidia-cuda-runtime-cu12==12.8.90``)."""
    for line in lines:
        m = re.match(r"\s*nvidia-cuda-runtime(?:-cu\d+)?\s*==\s*(\d+)\.(\d+)", line, re.I)
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    return None


def cuda_driver_minimum(cuda: str) -> str | None:
    """The driver a CUDA runtime version needs (None: a major release ffsr does not know)."""
    major = version_tuple(cuda)[:1]
    return CUDA_DRIVER_MINIMUM.get(major[0]) if major else None


def nvenc_driver_minimum(ffnvcodec: str | None = None) -> str | None:
    """The driver the NVENC API of ffsr's FFmpeg build needs (pinned ffnvcodec headers)."""
    version = ffnvcodec or pinned().get("FFNVCODEC_VERSION", "")
    return NVENC_DRIVER_MINIMUM.get(".".join(str(p) for p in version_tuple(version)[:2]))


def hidden_by_visible_devices(env: Mapping[str, str], count: int) -> str | None:
    """A sentence when CUDA_VISIBLE_DEVICES leaves none of ``count`` GPUs visible."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    visible = 0
    for e in (e.strip() for e in value.split(",")):
        # CUDA takes the entries up to the first one that names no device.
        if not ((e.isdigit() and int(e) < count) or e.startswith(("GPU-", "MIG-"))):
            break
        visible += 1
    if visible:
        return None
    return (f"CUDA_VISIBLE_DEVICES={value!r} hides every GPU from CUDA: unset it, or set it to "
            f"a GPU index from 0 to {count - 1}")


def missing_libraries(ldd_output: str) -> list[str]:
    """Sonames ldd reports as 'not found'."""
    return [m.group(1) for m in re.finditer(r"^\s*(\S+) => not found", ldd_output, re.M)]


def resolved_libraries(ldd_output: str) -> dict[str, str]:
    """soname -> path for every library ldd resolved."""
    return {m.group(1): m.group(2)
            for m in re.finditer(r"^\s*(\S+) => (/\S+) \(0x", ldd_output, re.M)}


def nvenc_failure(log: str) -> str | None:
    """Why an NVENC encoder did not open, from ffmpeg's log, as the fix (None: no NVENC error)."""
    if "Cannot load libcuda.so.1" in log:
        return f"no NVIDIA driver is loaded (libcuda.so.1 is missing): {DRIVER_INSTALL}"
    if "Cannot load libnvidia-encode.so.1" in log:
        return ("the driver's NVENC library libnvidia-encode.so.1 is missing: install the "
                "driver's encode package (e.g. libnvidia-encode on Ubuntu), or in Docker "
                "request the 'video' driver capability")
    m = re.search(r"minimum required Nvidia driver for nvenc is (\S+)", log)
    if m:
        return f"the NVIDIA driver is too old for NVENC: update it to version {m.group(1)} or newer"
    if "No CUDA capable devices found" in log:
        return "the NVIDIA driver sees no GPU"
    if "No capable devices found" in log or "unsupported device" in log:
        return ("this GPU has no NVENC video encoder (data-centre GPUs such as the A100, H100 "
                "and H200 have none): use --encoder libx264")
    if "incompatible client key" in log or "out of memory" in log.lower():
        return ("the GPU refused another NVENC session (consumer GPUs allow a few at a time): "
                "close other encoders and try again")
    m = re.search(r"\[(?:h264|hevc|av1)_nvenc[^\]]*\] (.+)", log)
    return f"NVENC failed: {m.group(1).strip()}" if m else None


# ---------------------------------------------------------------- probes


def host_gpus() -> HostGpus:
    """The GPUs and driver version nvidia-smi reports (a sentence when there are none)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        if Path("/proc/driver/nvidia/version").exists():
            return HostGpus(problem="the NVIDIA kernel driver is loaded but nvidia-smi is "
                                    "missing: reinstall the NVIDIA driver's utilities")
        return HostGpus(problem=f"no NVIDIA driver is installed (nvidia-smi not found): "
                                f"{DRIVER_INSTALL}")
    try:
        out = subprocess.run([smi, f"--query-gpu={SMI_QUERY[0]}", f"--format={SMI_QUERY[1]}"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return HostGpus(problem=f"nvidia-smi did not answer ({e}): reinstall the NVIDIA driver")
    gpus = parse_smi_gpus(out.stdout)
    if out.returncode != 0 or not gpus:
        return HostGpus(problem=smi_failure(out.stdout + out.stderr))
    return HostGpus(tuple(gpus), gpus[0].driver)


def local_cuda_version() -> str | None:
    """The CUDA runtime the runtimes in this Python environment ship (PyPI nvidia-* wheels)."""
    versions = installed_versions(CUDA_RUNTIME_DISTRIBUTIONS)
    return cuda_version_from_freeze(f"{k}=={v}" for k, v in versions.items())


def require_driver(host: HostGpus, what: str, minimum: str | None, needs: str,
                   visible_env: Mapping[str, str] | None = None) -> GpuInfo:
    """The first GPU, or one sentence: no driver, no GPU, hidden by ``visible_env``'s
    CUDA_VISIBLE_DEVICES (where it applies: not to containers), or a driver too old."""
    if host.problem or not host.gpus:
        fix = host.problem or "the NVIDIA driver reports no GPU"
        if minimum and fix.endswith(DRIVER_INSTALL):
            fix += f" (version {minimum} or newer, for {needs})"
        raise FfsrError(f"{what} needs an NVIDIA GPU, but {fix}.")
    hidden = hidden_by_visible_devices(visible_env or {}, len(host.gpus))
    if hidden:
        raise FfsrError(f"{what} needs an NVIDIA GPU, but {hidden}.")
    if minimum and host.driver and not driver_at_least(host.driver, minimum):
        raise FfsrError(f"{what} needs NVIDIA driver {minimum} or newer for {needs}, but this "
                        f"host has {host.driver}: update the driver to at least version {minimum}.")
    return host.gpus[0]


def wants_gpu(device: str, encoder: str | None) -> bool:
    """Whether a job needs the GPU: a CUDA device for the model or an NVENC encoder."""
    return device == "cuda" or (encoder or "") in NVENC_ENCODERS


def gpu_request_name(device: str, encoder: str | None) -> str:
    """How the user asked for the GPU, for the sentence that refuses it."""
    if device == "cuda":
        return "--device cuda"
    return f"--encoder {encoder}"


def required_driver(cuda: str | None, device: str, encoder: str | None) -> tuple[str | None, str]:
    """(minimum driver, what needs it) for a job: the CUDA runtime it runs and/or NVENC."""
    needs: list[tuple[str, str]] = []
    if device == "cuda" and cuda and (minimum := cuda_driver_minimum(cuda)):
        needs.append((minimum, f"CUDA {cuda}"))
    if (encoder or "") in NVENC_ENCODERS and (minimum := nvenc_driver_minimum()):
        needs.append((minimum, "NVENC"))
    if not needs:
        return None, "the GPU"
    return max(needs, key=lambda n: version_tuple(n[0]))


def require_local_gpu(device: str, encoder: str | None) -> None:
    """Refuse a local GPU job whose driver or GPU cannot run it (before any decoding)."""
    if not wants_gpu(device, encoder):
        return
    minimum, needs = required_driver(local_cuda_version(), device, encoder)
    require_driver(host_gpus(), gpu_request_name(device, encoder), minimum, needs, os.environ)


def _ldd(path: Path) -> str:
    try:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout


def backend_cuda_problem(ffmpeg: Path, backend: str) -> str | None:
    """Why this ffmpeg's ``backend`` cannot run on CUDA (None: its CUDA library loads)."""
    ffmpeg_libs = _ldd(ffmpeg)
    resolved = resolved_libraries(ffmpeg_libs)
    rebuild = ("run `ffsr build-ffmpeg --cuda --backends onnx,torch` and set FFSR_FFMPEG to the "
               "binary it prints")
    if backend == "torch":
        if "libtorch_cpu.so" not in resolved:
            return None  # not linked at all: choose_backend already says so
        if "libtorch_cuda.so" not in resolved:
            return f"this ffmpeg's LibTorch has no CUDA (it was built without --cuda): {rebuild}"
        return None
    if backend == "onnx":
        ort = next((p for name, p in resolved.items() if name.startswith("libonnxruntime.so")), None)
        if ort is None:
            return None  # not linked at all: choose_backend already says so
        provider = Path(ort).resolve().parent / "libonnxruntime_providers_cuda.so"  # the wheel's capi/
        if not provider.is_file():
            return ("this ffmpeg's ONNX Runtime has no CUDA provider (the CPU onnxruntime wheel): "
                    "pip install 'onnxruntime-gpu[cuda,cudnn]' in place of onnxruntime, then "
                    f"{rebuild}")
        missing = [lib for lib in missing_libraries(_ldd(provider)) if lib not in resolved]
        if missing:
            return (f"ONNX Runtime's CUDA provider cannot load {', '.join(missing)}: pip install "
                    "'onnxruntime-gpu[cuda,cudnn]' (CUDA and cuDNN from PyPI), or add your CUDA "
                    "libraries to LD_LIBRARY_PATH")
        return None
    return None


def require_backend_cuda(ffmpeg: Path, backend: str) -> None:
    problem = backend_cuda_problem(ffmpeg, backend)
    if problem:
        raise FfsrError(f"--device cuda cannot run the {backend} backend: {problem}.")
