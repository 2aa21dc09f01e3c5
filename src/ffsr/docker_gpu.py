"""GPU checks for the Docker runtime, ordered from the most fundamental: the engine can hand
a container a GPU (an NVIDIA runtime, or CDI GPU devices), the image is the cuda flavour,
and the host driver is new enough for the CUDA inside that image.

Without them Docker refuses the GPU only when the container starts ("could not select
device driver"), after ffsr has probed the input and staged the output. The engine's own
answers (``docker info`` through the SDK, the image's labels, the image's pip freeze) are
the evidence; parsing them is kept in pure functions.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ffsr.errors import FfsrError
from ffsr.gpu import (
    HostGpus,
    cuda_version_from_freeze,
    gpu_request_name,
    host_gpus,
    require_driver,
    required_driver,
    wants_gpu,
)
from ffsr.image import LABEL_NS, PREFIX, connect, default_tag, engine_error, image_exists

TOOLKIT_FIX = ("install the NVIDIA Container Toolkit and configure Docker for it "
               "(`sudo nvidia-ctk runtime configure --runtime=docker`, then restart Docker)")
DRIVER_CAPABILITIES = ["gpu", "compute", "utility", "video"]
"""What the container asks the NVIDIA runtime for: CUDA (compute), nvidia-smi (utility) and
NVENC/NVDEC (video, which the default compute,utility leaves out)."""
FREEZE_FILE = f"{PREFIX}/python-packages.txt"
FLAVOR_LABEL = f"{LABEL_NS}.flavor"
CDI_GPU_PREFIX = "nvidia.com/gpu="


@dataclass(frozen=True)
class EngineGpu:
    """How a Docker engine can hand a container an NVIDIA GPU, from ``docker info``."""

    runtimes: tuple[str, ...] = ()
    """Configured NVIDIA runtimes (nvidia-ctk runtime configure adds 'nvidia')."""
    cdi_devices: tuple[str, ...] = ()
    """CDI GPU devices the engine discovered (nvidia-ctk cdi generate; Docker 28+)."""

    @property
    def ok(self) -> bool:
        return bool(self.runtimes or self.cdi_devices)

    def describe(self) -> str:
        parts = []
        if self.runtimes:
            parts.append(f"runtime {', '.join(self.runtimes)}")
        if self.cdi_devices:
            parts.append(f"CDI devices {', '.join(self.cdi_devices)}")
        return "; ".join(parts) or "no NVIDIA runtime and no CDI GPU devices"


@dataclass(frozen=True)
class ImageGpu:
    """What an image holds for GPU work: its ffsr flavour label and its CUDA runtime."""

    name: str
    flavor: str | None
    cuda: str | None


# ---------------------------------------------------------------- pure parsing


def engine_gpu_support(info: Mapping[str, Any]) -> EngineGpu:
    """The NVIDIA runtimes and CDI GPU devices in an engine's ``/info`` answer."""
    runtimes = tuple(sorted(
        name for name, spec in (info.get("Runtimes") or {}).items()
        if "nvidia" in name.lower() or "nvidia" in str((spec or {}).get("path", "")).lower()))
    cdi = tuple(str(d.get("ID")) for d in info.get("DiscoveredDevices") or []
                if str(d.get("Source", "")).lower() == "cdi"
                and str(d.get("ID", "")).startswith(CDI_GPU_PREFIX))
    return EngineGpu(runtimes, cdi)


def device_requests(support: EngineGpu) -> list[Any]:
    """The device request that gives a container every GPU on this engine: the NVIDIA
    runtime's 'gpu' driver (with the video capability NVENC needs), else the CDI devices."""
    from docker.types import DeviceRequest

    if support.cdi_devices and not support.runtimes:
        ids = [d for d in support.cdi_devices if d == f"{CDI_GPU_PREFIX}all"] or list(support.cdi_devices)
        return [DeviceRequest(driver="cdi", device_ids=ids)]
    return [DeviceRequest(count=-1, capabilities=[DRIVER_CAPABILITIES])]


def no_runtime_sentence(what: str, host: HostGpus | None) -> str:
    """The one sentence for an engine without a GPU runtime (the driver first when the host
    has none either: the toolkit needs it)."""
    if host is not None and not host.gpus:
        return (f"{what} asks Docker for a GPU, but this Docker engine has no NVIDIA GPU runtime "
                "and this host has no usable NVIDIA driver: install the NVIDIA driver, then "
                f"{TOOLKIT_FIX}.")
    return f"{what} asks Docker for a GPU, but this Docker engine has no NVIDIA GPU runtime: {TOOLKIT_FIX}."


def start_error(e: Exception) -> FfsrError | None:
    """One sentence for the engine's GPU refusals when a container starts (None: not one)."""
    text = str(getattr(e, "explanation", None) or e)
    if "could not select device driver" in text:
        return FfsrError(f"This Docker engine has no NVIDIA GPU runtime: {TOOLKIT_FIX}.")
    if "unresolvable CDI devices" in text:
        return FfsrError("Docker does not know the NVIDIA CDI devices: generate them with "
                         "`sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`.")
    if "nvidia-container-cli" in text or "nvidia-container-runtime" in text:
        detail = text.split("nvidia-container-cli:", 1)[-1].strip().removesuffix(": unknown")
        return FfsrError(f"The NVIDIA Container Toolkit could not give the container a GPU "
                         f"({detail[:160]}): check the host driver with `nvidia-smi`, then reinstall "
                         "the NVIDIA Container Toolkit.")
    return None


def engine_is_local(env: Mapping[str, str]) -> bool:
    """Whether the engine runs on this host (then this host's driver is the one it uses)."""
    host = env.get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")


# ---------------------------------------------------------------- the engine's answers


def start_container(api: Any, cid: str) -> None:
    """Start a created container; the engine's GPU refusals become one sentence."""
    from docker.errors import DockerException

    try:
        api.start(cid)
    except DockerException as e:
        raise (start_error(e) or engine_error(e, "start the container")) from None


def read_image_file(api: Any, image: str, path: str) -> str | None:
    """A text file from an image, read from a container that is created and never started."""
    from docker.errors import DockerException

    try:
        cid = api.create_container(image, entrypoint=["/bin/true"], network_disabled=True)["Id"]
    except DockerException as e:
        raise engine_error(e, f"read {path} from {image}") from None
    try:
        stream, _ = api.get_archive(cid, path)
        data = b"".join(stream)
    except DockerException:
        return None
    finally:
        api.remove_container(cid, force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next((m for m in tar.getmembers() if m.isfile()), None)
        f = tar.extractfile(member) if member else None
        return f.read().decode(errors="replace") if f else None


def image_gpu(api: Any, image: str) -> ImageGpu:
    """The image's flavour (its label) and the CUDA runtime its venv ships (its pip freeze)."""
    labels = (api.inspect_image(image).get("Config") or {}).get("Labels") or {}
    flavor = labels.get(FLAVOR_LABEL)
    cuda = None
    if flavor == "cuda":
        freeze = read_image_file(api, image, FREEZE_FILE) or ""
        cuda = cuda_version_from_freeze(freeze.splitlines())
    return ImageGpu(image, flavor, cuda)


def gpu_starts(api: Any, image: str, support: EngineGpu) -> bool:
    """Whether the engine really starts a container of ``image`` with a GPU: the authority
    when ``docker info`` shows no runtime (the NVIDIA hook alone also serves GPU requests)."""
    from docker.errors import DockerException

    host_config = api.create_host_config(network_mode="none",
                                         device_requests=device_requests(support))
    try:
        cid = api.create_container(image, entrypoint=["/bin/true"], host_config=host_config)["Id"]
    except DockerException as e:
        raise engine_error(e, "create a GPU test container") from None
    try:
        api.start(cid)
        api.wait(cid, timeout=60)
    except DockerException as e:
        if start_error(e) is not None:
            return False
        raise engine_error(e, "start a GPU test container") from None
    finally:
        api.remove_container(cid, force=True)
    return True


def require_docker_gpu(image: str | None, device: str, encoder: str | None,
                       api: Any | None = None) -> None:
    """Refuse a Docker GPU job that cannot run, most fundamental cause first: no GPU runtime
    in the engine, no such image, not the cuda flavour, a host driver too old for it."""
    if not wants_gpu(device, encoder):
        return
    what = gpu_request_name(device, encoder)
    name = image or default_tag("cuda")
    api = api or connect(timeout=60)
    local = engine_is_local(os.environ)
    try:
        support = engine_gpu_support(api.info())
    except Exception as e:  # noqa: BLE001 - any engine failure is one sentence
        raise engine_error(e, "describe itself (docker info)") from None
    exists = image_exists(api, name)
    if not support.ok and not (exists and gpu_starts(api, name, support)):
        raise FfsrError(no_runtime_sentence(what, host_gpus() if local else None))
    facts = require_cuda_image(api, name, what, exists)
    if local:
        minimum, needs = required_driver(facts.cuda, device, encoder)
        require_driver(host_gpus(), what, minimum, needs.replace("CUDA", "the image's CUDA"))


def require_cuda_image(api: Any, name: str, what: str, exists: bool | None = None) -> ImageGpu:
    """The image's GPU facts, or one sentence: it is missing, or it is not the cuda flavour."""
    if not (image_exists(api, name) if exists is None else exists):
        raise FfsrError(f"Docker image {name} not found: build it with `ffsr build-image --flavor cuda`.")
    facts = image_gpu(api, name)
    if facts.flavor != "cuda":
        kind = f"the {facts.flavor} flavour of the ffsr image" if facts.flavor else "not an ffsr image"
        raise FfsrError(f"{what} needs the cuda flavour of the ffsr image, but {name} is {kind}: "
                        f"build the cuda flavour with `ffsr build-image --flavor cuda` and pass "
                        f"--image {default_tag('cuda')}.")
    return facts
