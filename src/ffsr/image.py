"""`ffsr build-image`: the ffsr Docker images (cpu and cuda flavours).

The Dockerfile is rendered from ``docker/Dockerfile.j2`` and built through the Docker
SDK's low-level API, never the docker CLI, so progress and errors are ours to present.
The builder stage runs ``docker/build-ffmpeg.sh`` unchanged, with the FFmpeg tarball
and the ONNX Runtime headers fetched on the host by ``docker/fetch-sources.sh`` and
shipped in the build context (the container never needs Debian sid). With no registry
reachable, the default base image is made here from Debian's archive (debootstrap).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from ffsr import __version__
from ffsr.backends import get_backend
from ffsr.errors import FfsrError
from ffsr.paths import DOCKER_DIR, PROJECT_ROOT, cache_dir, sources_dir
from ffsr.pip_setup import PipSetup, discover, overrides_only
from ffsr.versions import ffmpeg_version, pinned
from ffsr.zoo import sha256_file

FLAVORS = ("cpu", "cuda")
TEMPLATE = DOCKER_DIR / "Dockerfile.j2"
PREFIX = "/opt/ffsr"
USER = "ffsr"
LABEL_NS = "org.ffsr"
INPUTS_LABEL = f"{LABEL_NS}.inputs"
# The files of docker/ the FFmpeg build stage needs: editing anything else (the template,
# the README) must not invalidate the cached FFmpeg build layer.
BUILD_FILES = ("build-ffmpeg.sh", "fetch-sources.sh", "versions.env")
# What of the checkout goes into the image so that `ffsr convert-model` runs inside it.
APP_ITEMS = ("pyproject.toml", "README.md", "src", "convert", "docker", "filtergraphs", "models")
SKIP_NAMES = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
# Free space the engine's data root needs for a build (builder stage + runtime image).
DISK_NEEDED_GB = {"cpu": 10, "cuda": 25}  # measured: ~7 GB and ~17 GB
# The same list scripts/setup installs for native builds (build-ffmpeg.sh checks for each).
BUILD_PACKAGES = ("build-essential", "nasm", "pkg-config", "xz-utils", "patch",
                  "libx264-dev", "libx265-dev", "libsvtav1enc-dev", "libvpx-dev", "libopus-dev",
                  "libdav1d-dev", "zlib1g-dev")
IMAGE_BACKENDS = ("onnx", "openvino", "torch", "tensorflow")
"""Every backend, in the order `ffsr build-image --backends` defaults to (it is in the
Dockerfile: another order is another FFmpeg build layer)."""
FIXED_MTIME = 1_700_000_000  # context members get one mtime: same inputs, same tar
PIP_INDEX_DIR = "/build/pip-index"  # local (file://) package indexes carried into the build


@dataclass(frozen=True)
class ImageConfig:
    """Everything that decides what one image build produces."""

    flavor: str = "cpu"
    tag: str | None = None
    backends: tuple[str, ...] = IMAGE_BACKENDS
    """The image carries every backend: a container's start-up cost is paid anyway."""
    ffmpeg_source: str = "debian"
    """'debian' (Debian's archive), a local tarball or a URL; the sha256 is checked."""
    base_image: str | None = None
    """None: ``ffsr-base:<suite>``, made from Debian's archive when missing."""
    ca_bundle: Path | None = None
    """PEM bundle pip trusts inside the build (TLS-intercepting proxies); overrides pip's."""
    wheelhouse: Path | None = None
    """Directory of local wheels pip prefers (``--find-links``); overrides pip's."""
    host_pip: bool = True
    """Carry this machine's pip configuration (CA bundle, local wheels and indexes) into the
    build and drop index hosts it cannot reach (see ffsr.pip_setup)."""
    no_cache: bool = False
    jobs: int | None = None

    @property
    def image_tag(self) -> str:
        return self.tag or default_tag(self.flavor)

    @property
    def base(self) -> str:
        return self.base_image or default_base_image()

    @property
    def cuda(self) -> bool:
        return self.flavor == "cuda"

    def validate(self) -> None:
        """Refuse bad options with one sentence, before anything slow starts."""
        if self.flavor not in FLAVORS:
            raise FfsrError(f"Unknown image flavour '{self.flavor}'; choose one of: {', '.join(FLAVORS)}.")
        for b in self.backends:
            get_backend(b)
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise FfsrError(f"CA bundle not found: {self.ca_bundle}")
        if self.wheelhouse is not None and not self.wheelhouse.is_dir():
            raise FfsrError(f"Wheelhouse directory not found: {self.wheelhouse}")
        if self.jobs is not None and self.jobs < 1:
            raise FfsrError("--jobs must be at least 1.")


@dataclass(frozen=True)
class Progress:
    """One thing worth showing: ``kind`` is pip, base, sources, context, step, phase or done."""

    kind: str
    text: str


@dataclass(frozen=True)
class ImageResult:
    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    log_path: Path
    reused: bool = False

    @property
    def size_gb(self) -> float:
        return self.size_bytes / 1e9


ProgressCallback = Callable[[Progress], None]


def default_tag(flavor: str) -> str:
    """The tag `ffsr build-image` gives a flavour unless told otherwise (what `upscale` runs)."""
    return f"ffsr:{ffmpeg_version()}-{flavor}"


def default_base_image() -> str:
    return f"ffsr-base:{pinned()['DEBIAN_SUITE']}"


def default_flavor() -> str:
    """cuda on a machine with an NVIDIA GPU, else cpu."""
    from ffsr.gpu import host_gpus

    return "cuda" if host_gpus().ok else "cpu"


# ---------------------------------------------------------------- rendering


def wheelhouse_wheels(wheel_dirs: Sequence[Path]) -> list[Path]:
    """The wheels of every local wheel folder, one per file name (the first folder wins)."""
    found: dict[str, Path] = {}
    for d in wheel_dirs:
        for w in sorted(d.glob("*.whl")):
            found.setdefault(w.name, w)
    return [found[name] for name in sorted(found)]


def python_requirements(config: ImageConfig) -> list[str]:
    """pip requirements of the image's venv: the runtimes FFmpeg links plus the conversion
    frameworks that fit the flavour (spandrel needs a torchvision matching torch: PyPI's
    is CUDA-built, so the cpu flavour, with its CPU-only torch, has none)."""
    pins = pinned()
    reqs = [f"onnx=={pins['ONNX_VERSION']}"]
    if "onnx" in config.backends:
        ort = "onnxruntime-gpu[cuda,cudnn]" if config.cuda else "onnxruntime"
        reqs.append(f"{ort}=={pins['ONNXRUNTIME_VERSION']}")
    if "torch" in config.backends:
        if config.cuda:
            reqs += [f"torch=={pins['TORCH_VERSION']}", f"torchvision=={pins['TORCHVISION_VERSION']}",
                     f"spandrel=={pins['SPANDREL_VERSION']}", "safetensors"]
        else:
            reqs += [f"torch=={pins['TORCH_CPU_VERSION']}", "safetensors"]
    if "openvino" in config.backends:
        reqs.append(f"openvino=={pins['OPENVINO_VERSION']}")
    if "tensorflow" in config.backends:
        reqs.append(f"tensorflow=={pins['TENSORFLOW_VERSION']}")
    return reqs


def ffsr_requirements() -> list[str]:
    """ffsr's own dependencies (pyproject.toml), installed with the runtimes so that the
    editable install of ffsr in the last layers needs no index."""
    text = (PROJECT_ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10: the list is simple enough to read directly
        block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, re.S | re.M)
        deps = re.findall(r'"([^"]+)"', block.group(1)) if block else []
    else:
        deps = list(tomllib.loads(text)["project"]["dependencies"])
    # setuptools builds the editable install offline (--no-build-isolation).
    return [*deps, "setuptools>=68"]


def dropped_packages(config: ImageConfig) -> list[str]:
    """Dependencies pip pulls in that neither FFmpeg nor conversion uses: the CUDA torch's
    triton (torch.compile's JIT, ~1 GB)."""
    return ["triton"] if config.cuda and "torch" in config.backends else []


def wanted_indexes(config: ImageConfig, wheel_dirs: Sequence[Path]) -> list[str]:
    """PyTorch's CPU wheel index for the cpu flavour's torch, unless a local folder has it."""
    if config.cuda or "torch" not in config.backends:
        return []
    wanted = f"torch-{pinned()['TORCH_CPU_VERSION']}-"
    if any(w.name.startswith(wanted) for w in wheelhouse_wheels(wheel_dirs)):
        return []
    return [pinned()["TORCH_CPU_INDEX_URL"]]


def pip_setup(config: ImageConfig, *, discover_host: bool | None = None) -> PipSetup:
    """What pip inside the build uses. With ``config.host_pip`` (and ``discover_host`` not
    False) this reads pip's configuration and probes index hosts; otherwise only
    ``--ca-bundle``/``--wheelhouse`` count and nothing is probed (what tests render)."""
    config.validate()
    def wants(dirs: Sequence[Path]) -> list[str]:
        return wanted_indexes(config, dirs)

    if not (config.host_pip if discover_host is None else discover_host):
        return overrides_only(config.ca_bundle, config.wheelhouse, wants)

    def needs(url: str) -> str:
        if url != pinned()["TORCH_CPU_INDEX_URL"]:
            return ""
        return (f"the cpu image's torch {pinned()['TORCH_CPU_VERSION']} comes only from there: pass "
                "--wheelhouse with a folder holding that wheel")

    return discover(ca_bundle=config.ca_bundle, wheelhouse=config.wheelhouse,
                    wanted_indexes=wants, needs_index=needs)


def pip_options(pip: PipSetup) -> list[str]:
    """pip install options for the indexes of ``pip`` (local ones as carried into the build)."""
    local = [f"file://{PIP_INDEX_DIR}/{i}/simple" for i in range(len(pip.local_indexes))]
    options: list[str] = []
    if pip.no_index:
        if not local:
            return ["--no-index"]
        options += ["--index-url", local.pop(0)]
    elif pip.index_url:
        options += ["--index-url", pip.index_url]
    for url in [*pip.extra_index_urls, *local]:
        options += ["--extra-index-url", url]
    return options


def nvenc_deb_name() -> str:
    """The NVIDIA codec headers package fetch-sources.sh downloads for cuda builds."""
    return f"libffmpeg-nvenc-dev_{pinned()['FFNVCODEC_VERSION']}_all.deb"


def build_script_options(config: ImageConfig) -> list[str]:
    """Extra options for docker/build-ffmpeg.sh beyond prefix, python, backends and sources."""
    options = ["--jobs", str(config.jobs)] if config.jobs else []
    return options + (["--cuda"] if config.cuda else [])


def image_labels(config: ImageConfig) -> dict[str, str]:
    """OCI labels plus one label per pin in docker/versions.env and what this flavour holds."""
    labels = {
        "org.opencontainers.image.title": "ffsr",
        "org.opencontainers.image.description":
            f"FFmpeg {ffmpeg_version()} with DNN backends ({','.join(config.backends) or 'none'}), "
            f"{config.flavor} flavour; entrypoint: ffmpeg",
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.base.name": config.base,
        f"{LABEL_NS}.flavor": config.flavor,
        f"{LABEL_NS}.backends": ",".join(config.backends),
        f"{LABEL_NS}.python-requirements": " ".join(python_requirements(config)),
    }
    for key, value in pinned().items():
        labels[f"{LABEL_NS}.pin.{key.lower().replace('_', '-')}"] = value
    return labels


def _dockerfile_string(value: object) -> str:
    """A double-quoted Dockerfile word: no variable expansion, quotes and backslashes escaped."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{text}"'


def render_dockerfile(config: ImageConfig, pip: PipSetup | None = None) -> str:
    """The Dockerfile for ``config`` (what --dry-run prints); ``pip`` defaults to the
    explicit options alone (see pip_setup)."""
    config.validate()
    pip = pip or pip_setup(config, discover_host=False)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters["sh"] = shlex.quote
    env.filters["dq"] = _dockerfile_string
    return env.get_template(TEMPLATE.name).render(
        flavor=config.flavor,
        cuda=config.cuda,
        base_image=config.base,
        ffmpeg_version=ffmpeg_version(),
        backends=list(config.backends),
        backends_arg=",".join(config.backends) or "none",
        build_packages=list(BUILD_PACKAGES),
        nvenc_deb=nvenc_deb_name() if config.cuda else None,
        requirements=python_requirements(config),
        ffsr_requirements=ffsr_requirements(),
        drop_packages=dropped_packages(config),
        pip_options=pip_options(pip),
        ca_bundle=pip.ca_bundle is not None,
        wheelhouse=bool(wheelhouse_wheels(pip.wheel_dirs)),
        pip_indexes=bool(pip.local_indexes),
        tarball=f"ffmpeg-{ffmpeg_version()}.tar.xz",
        build_options="".join(f" {o}" for o in build_script_options(config)),
        prefix=PREFIX,
        venv=f"{PREFIX}/venv",
        ffmpeg_prefix=f"{PREFIX}/ffmpeg",
        app_dir=f"{PREFIX}/app",
        user=USER,
        labels=image_labels(config),
    )


# ---------------------------------------------------------------- Docker engine


def engine_error(e: Exception, what: str | None = None) -> FfsrError:
    """Turn a Docker SDK/transport exception into one sentence the user can act on."""
    text = str(e)
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if "Permission denied" in text or "PermissionError" in text:
        return FfsrError(f"Permission denied on the Docker socket ({host}): add your user to the "
                         "'docker' group and log in again, or run as root.")
    if "No space left on device" in text or "no space left on device" in text:
        return FfsrError("The disk holding Docker's data is full: free space "
                         "(e.g. remove unused images and build cache) and try again.")
    if what:
        return FfsrError(f"The Docker engine at {host} failed while trying to {what}: {_shorten(text, 200)}")
    return FfsrError(f"No Docker engine is reachable at {host}: start it (scripts/start-dockerd, "
                     "or `sudo systemctl start docker`) or set DOCKER_HOST.")


def connect(timeout: int = 3600) -> Any:
    """A low-level Docker API client to a live engine (long timeout: silent build steps)."""
    try:
        from docker.api.client import APIClient
        from docker.errors import DockerException
        from docker.utils.utils import kwargs_from_env
    except ImportError:  # pragma: no cover - docker is a dependency of ffsr
        raise FfsrError("The 'docker' Python package is missing: pip install docker") from None
    try:
        api = APIClient(timeout=timeout, **kwargs_from_env())
        api.ping()
    except (DockerException, OSError) as e:
        raise engine_error(e) from None
    return api


def image_id(api: Any, name: str) -> str:
    """The image's id (sha256:…), or one sentence naming the build that makes it."""
    from docker.errors import ImageNotFound

    try:
        return str(api.inspect_image(name)["Id"])
    except ImageNotFound:
        raise FfsrError(f"Docker image {name} not found: run `ffsr build-image` first.") from None


def image_exists(api: Any, name: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        api.inspect_image(name)
    except ImageNotFound:
        return False
    return True


def check_disk_space(api: Any, flavor: str) -> None:
    """Refuse to start a build that cannot fit in the engine's data root (when it is local)."""
    try:
        root = api.info().get("DockerRootDir", "")
    except Exception:  # noqa: BLE001 - the check is best-effort
        return
    if not root or not os.path.isdir(root):
        return
    free_gb = shutil.disk_usage(root).free / 1e9
    need = DISK_NEEDED_GB[flavor]
    if free_gb < need:
        raise FfsrError(f"Not enough free disk space for the {flavor} image: {free_gb:.1f} GB free "
                        f"in {root}, about {need} GB needed; free space (e.g. remove unused images "
                        "and build cache) and try again.")


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (never hard-coded in ffsr)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and line.split()[1:]:
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            words = line.split()
            if words[:1] == ["deb"]:
                for w in words[1:]:
                    if w.startswith(("http://", "https://")):
                        return w
    raise FfsrError("No Debian mirror is configured in /etc/apt, so the base image cannot be made "
                    "from Debian's archive; pass --base-image with an image you have.")


def create_debian_base(api: Any, name: str, log: Callable[[str], None],
                       on_progress: ProgressCallback | None = None) -> None:
    """Make ``name`` with debootstrap (minbase) and import it: no registry needed."""
    suite = pinned()["DEBIAN_SUITE"]
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise FfsrError(f"The base image {name} is missing and debootstrap is not installed to make "
                        "it: apt-get install -y debootstrap (or pass --base-image).")
    if os.geteuid() != 0:
        raise FfsrError(f"The base image {name} is missing and making it with debootstrap needs root: "
                        "run this once as root (or pass --base-image).")
    mirror = debian_mirror()
    if on_progress:
        on_progress(Progress("base", f"making {name}: debootstrap {suite} from {mirror}"))
    work = Path(tempfile.mkdtemp(prefix="ffsr-base-", dir=_scratch_dir()))
    try:
        root = work / "root"
        _run_logged([debootstrap, "--variant=minbase", suite, str(root), mirror], log,
                    f"debootstrap could not make a {suite} root file system from {mirror}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (root / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        tar_path = work / "root.tar"
        _run_logged(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tar_path), "."], log,
                    "could not pack the base root file system")
        if on_progress:
            on_progress(Progress("base", f"importing {name}"))
        repo, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "latest")
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["/bin/bash"]',
            f"LABEL {LABEL_NS}.base=debootstrap-minbase-{suite}",
        ]
        try:
            out = api.import_image(src=str(tar_path), repository=repo, tag=tag, changes=changes)
        except Exception as e:  # noqa: BLE001 - any engine failure is reported in one sentence
            raise engine_error(e, f"import the base image {name}") from None
        log(f"import: {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_base_image(api: Any, config: ImageConfig, log: Callable[[str], None],
                      on_progress: ProgressCallback | None = None) -> str:
    """The base image's id; ffsr's default base is made when missing, others are pulled."""
    from docker.errors import DockerException

    name = config.base
    if not image_exists(api, name):
        if name == default_base_image():
            create_debian_base(api, name, log, on_progress)
        else:
            if on_progress:
                on_progress(Progress("base", f"pulling {name}"))
            try:
                for line in api.pull(name, stream=True, decode=True):
                    log(f"pull: {line}")
                    if "error" in line:
                        raise FfsrError(f"The base image {name} is not available locally and could "
                                        f"not be pulled ({line['error']}); load it first or pass "
                                        "another --base-image.")
            except DockerException as e:
                reason = getattr(e, "explanation", None) or str(e)
                raise FfsrError(f"The base image {name} is not available locally and could not be "
                                f"pulled ({reason}); load it first or pass another --base-image.") from None
            if not image_exists(api, name):
                raise FfsrError(f"The base image {name} is not available locally and could not be "
                                "pulled; load it first or pass another --base-image.")
    return str(api.inspect_image(name)["Id"])


# ---------------------------------------------------------------- sources and context


def fetch_sources(config: ImageConfig, log: Callable[[str], None], cache: Path | None = None) -> Path:
    """FFmpeg tarball (sha256-checked) and ONNX Runtime headers on the host, via
    docker/fetch-sources.sh; returns the sources directory to ship in the context."""
    cache = cache or sources_dir()
    want = pinned()["FFMPEG_SHA256"]
    local = Path(config.ffmpeg_source).expanduser()
    if config.ffmpeg_source != "debian" and not config.ffmpeg_source.startswith(("http://", "https://")):
        if not local.is_file():
            raise FfsrError(f"FFmpeg source tarball not found: {config.ffmpeg_source}")
        got = sha256_file(local)
        if got != want:
            raise FfsrError(f"The FFmpeg source {local} has the wrong sha256 ({got}); FFmpeg "
                            f"{ffmpeg_version()} must be {want}.")
    env = dict(os.environ, FFSR_WITH_ONNX="1" if "onnx" in config.backends else "0",
               FFSR_WITH_NVENC="1" if config.cuda else "0")
    proc = subprocess.run(["bash", str(DOCKER_DIR / "fetch-sources.sh"), str(cache), config.ffmpeg_source],
                          capture_output=True, text=True, env=env)
    log(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("fetch-sources:")]
        reason = (lines[-1].removeprefix("fetch-sources:").strip() if lines
                  else f"exit status {proc.returncode}")
        if "sha256 mismatch" in reason:
            raise FfsrError(f"The FFmpeg source has the wrong sha256: {reason}.")
        raise FfsrError(f"Fetching the FFmpeg source failed: {reason}.")
    return cache


def _walk(path: Path) -> Iterator[Path]:
    """Files under ``path`` (sorted, caches and bytecode skipped)."""
    if path.is_file():
        yield path
        return
    for p in sorted(path.rglob("*")):
        if any(part in SKIP_NAMES or part.endswith(".egg-info") for part in p.relative_to(path).parts):
            continue
        if p.is_file() and p.suffix != ".pyc":
            yield p


@dataclass
class BuildContext:
    """The tar sent to the engine, and a hash of everything in it (image reuse key)."""

    path: Path
    inputs_hash: str
    members: list[str] = field(default_factory=list)


def context_entries(config: ImageConfig, dockerfile: str, sources: Path,
                    pip: PipSetup | None = None) -> Iterator[tuple[str, bytes | Path]]:
    """(name in context, content or file) for every member, in a fixed order."""
    pip = pip or pip_setup(config, discover_host=False)
    yield "Dockerfile", dockerfile.encode()
    for name in BUILD_FILES:
        yield f"docker/{name}", DOCKER_DIR / name
    for p in sorted((DOCKER_DIR / "patches").glob("*.patch")):
        yield f"docker/patches/{p.name}", p
    yield f"sources/ffmpeg-{ffmpeg_version()}.tar.xz", sources / f"ffmpeg-{ffmpeg_version()}.tar.xz"
    if "onnx" in config.backends:
        headers = sources / "onnxruntime-headers"
        for p in _walk(headers):
            yield f"sources/onnxruntime-headers/{p.relative_to(headers)}", p
    if config.cuda:
        yield f"sources/nvenc/{nvenc_deb_name()}", sources / "nvenc" / nvenc_deb_name()
    if pip.ca_bundle is not None:
        yield "ca-bundle.crt", pip.ca_bundle
    for w in wheelhouse_wheels(pip.wheel_dirs):
        yield f"wheelhouse/{w.name}", w
    for i, root in enumerate(pip.local_indexes):
        for p in _walk(root):
            yield f"pip-index/{i}/{p.relative_to(root)}", p
    for item in APP_ITEMS:
        src = PROJECT_ROOT / item
        if not src.exists():
            continue
        for p in _walk(src):
            yield f"app/{p.relative_to(PROJECT_ROOT)}", p


def make_context(config: ImageConfig, dockerfile: str, sources: Path, base_id: str,
                 directory: Path, pip: PipSetup | None = None) -> BuildContext:
    """Write the build context tar (deterministic: fixed owner and mtime)."""
    h = hashlib.sha256(base_id.encode() + b"\0")
    fd, name = tempfile.mkstemp(prefix="ffsr-context-", suffix=".tar", dir=directory)
    os.close(fd)
    ctx = BuildContext(Path(name), "")
    with tarfile.open(name, "w") as tar:
        for arcname, content in context_entries(config, dockerfile, sources, pip):
            info = tarfile.TarInfo(arcname)
            info.mtime = FIXED_MTIME
            h.update(arcname.encode() + b"\0")
            if isinstance(content, bytes):
                info.size, info.mode = len(content), 0o644
                h.update(hashlib.sha256(content).digest())
                tar.addfile(info, io.BytesIO(content))
            else:
                st = content.stat()
                info.size = st.st_size
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                h.update(bytes.fromhex(sha256_file(content)))
                with open(content, "rb") as f:
                    tar.addfile(info, f)
            ctx.members.append(arcname)
    ctx.inputs_hash = h.hexdigest()[:16]
    return ctx


# ---------------------------------------------------------------- building


STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the engine colours a step's stderr
ERROR_HINTS = ("build-ffmpeg: error:", "fetch-sources:", "ERROR:", "E: ", "error:")
TLS_HINTS = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed")
TLS_FAILURE = ("pip inside the build cannot verify the package index's TLS certificate "
               "(CERTIFICATE_VERIFY_FAILED): pass --ca-bundle with the CA bundle your network "
               "trusts (a TLS-intercepting proxy's, often /etc/ssl/certs/ca-certificates.crt).")


class _BuildWatcher:
    """Turns the engine's build stream into progress events and a failure reason."""

    def __init__(self, log: Callable[[str], None], on_progress: ProgressCallback | None) -> None:
        self.log = log
        self.on_progress = on_progress
        self.step = ""
        self.partial = ""
        self.recent: deque[str] = deque(maxlen=400)
        self.image_id = ""
        self.error = ""
        self.tls_failed = False
        """pip hit a certificate it cannot verify: it would retry for minutes, so stop."""

    def feed(self, chunk: dict[str, Any]) -> None:
        if "stream" in chunk:
            self.partial += str(chunk["stream"])
            *lines, self.partial = self.partial.split("\n")
            for line in lines:
                self._line(line)
        if "aux" in chunk and isinstance(chunk["aux"], dict) and chunk["aux"].get("ID"):
            self.image_id = str(chunk["aux"]["ID"])
        if "error" in chunk:
            self.error = str(chunk["error"]).strip()
            self.log(f"ERROR FROM ENGINE: {self.error}")
        if "status" in chunk:
            self.log(str(chunk["status"]))

    def _line(self, line: str) -> None:
        line = ANSI_RE.sub("", line)
        self.log(line)
        self.recent.append(line)
        if any(h in line for h in TLS_HINTS):
            self.tls_failed = True
        if (m := STEP_RE.match(line)) and self.on_progress:
            self.step = f"step {m.group(1)}/{m.group(2)}: {m.group(3)}"
            self.on_progress(Progress("step", _shorten(self.step)))
        elif line.startswith("==> ") and self.on_progress:
            phase, _, text = line[4:].partition(": ")
            self.on_progress(Progress("phase", f"FFmpeg {phase}: {text}"))
        elif (m := re.match(r"Successfully built ([0-9a-f]+)", line)) and not self.image_id:
            self.image_id = m.group(1)

    def failure(self) -> FfsrError | None:
        if self.partial:
            self._line(self.partial)
            self.partial = ""
        if self.tls_failed:
            return FfsrError(TLS_FAILURE)
        if not self.error:
            return None
        text = "\n".join(self.recent) + "\n" + self.error
        if "no space left on device" in text.lower():
            return FfsrError("The disk holding Docker's data is full (no space left on device): free "
                             "space (e.g. remove unused images and build cache) and try again.")
        reason = ""
        for line in reversed(self.recent):
            if any(h in line for h in ERROR_HINTS):
                reason = line.strip()
                break
        where = f" at {_shorten(self.step, 120)}" if self.step else ""
        detail = reason or self.error
        return FfsrError(f"The image build failed{where}: {detail}")


def _shorten(text: str, width: int = 64) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _scratch_dir() -> Path:
    d = cache_dir() / "image-build"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _run_logged(cmd: list[str], log: Callable[[str], None], failure: str) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: deque[str] = deque(maxlen=5)
    for line in proc.stdout:
        log(line.rstrip("\n"))
        tail.append(line.strip())
    if proc.wait() != 0:
        last = next((t for t in reversed(tail) if t), f"exit status {proc.returncode}")
        if "No space left on device" in last:
            raise FfsrError("The disk is full (no space left on device): free space and try again.")
        raise FfsrError(f"{failure[0].upper()}{failure[1:]}: {last}")


def new_log_path(config: ImageConfig) -> Path:
    logs = cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"build-image-{config.flavor}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


def build_image(config: ImageConfig, *, on_progress: ProgressCallback | None = None,
                api: Any | None = None, log_path: Path | None = None,
                pip: PipSetup | None = None) -> ImageResult:
    """Build (or reuse, when its inputs are unchanged) the image for ``config``; ``pip``
    defaults to pip_setup(config): the host's pip configuration, said in progress."""
    config.validate()
    started = time.monotonic()
    log_path = log_path or new_log_path(config)
    with open(log_path, "w") as log_file:
        def log(text: str) -> None:
            log_file.write(text if text.endswith("\n") else text + "\n")
            log_file.flush()

        try:
            return _build(config, api, log, log_path, started, on_progress, pip)
        except FfsrError as e:
            log(f"FAILED: {e.message}")
            if e.log_path is None:
                e.log_path = str(log_path)
            raise


def _build(config: ImageConfig, api: Any | None, log: Callable[[str], None], log_path: Path,
           started: float, on_progress: ProgressCallback | None,
           pip: PipSetup | None) -> ImageResult:
    from docker.errors import DockerException
    from urllib3.exceptions import HTTPError

    api = api or connect()
    log(f"ffsr {__version__} build-image {config}")
    if pip is None:
        pip = pip_setup(config)
        for note in pip.notes:
            log(f"pip: {note}")
            if on_progress:
                on_progress(Progress("pip", f"pip: {note}"))
    check_disk_space(api, config.flavor)
    base_id = ensure_base_image(api, config, log, on_progress)
    if on_progress:
        on_progress(Progress("sources", f"FFmpeg {ffmpeg_version()} source ({config.ffmpeg_source})"))
    sources = fetch_sources(config, log)
    dockerfile = render_dockerfile(config, pip)
    log("---- Dockerfile ----\n" + dockerfile + "--------------------")
    if on_progress:
        on_progress(Progress("context", "packing the build context"))
    ctx = make_context(config, dockerfile, sources, base_id, _scratch_dir(), pip)
    tag = config.image_tag
    try:
        if not config.no_cache and image_exists(api, tag):
            info = api.inspect_image(tag)
            if (info.get("Config", {}).get("Labels") or {}).get(INPUTS_LABEL) == ctx.inputs_hash:
                log(f"reusing {tag}: same inputs ({ctx.inputs_hash})")
                return ImageResult(tag, str(info["Id"]), int(info.get("Size", 0)),
                                   time.monotonic() - started, log_path, reused=True)
        watcher = _BuildWatcher(log, on_progress)
        try:
            with open(ctx.path, "rb") as f:
                stream = api.build(fileobj=f, custom_context=True, tag=tag, rm=True, forcerm=True,
                                   nocache=config.no_cache, pull=False, decode=True, network_mode="host",
                                   labels={INPUTS_LABEL: ctx.inputs_hash})
                try:
                    for chunk in stream:
                        watcher.feed(chunk)
                        if watcher.tls_failed:
                            break  # pip retries for minutes; the engine stops a build left
                finally:
                    if hasattr(stream, "close"):
                        stream.close()
        except (DockerException, OSError, HTTPError) as e:  # HTTPError: the engine went away
            raise engine_error(e, "run the build") from None
        if failure := watcher.failure():
            raise failure
        info = api.inspect_image(tag)
    finally:
        ctx.path.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    result = ImageResult(tag, str(info["Id"]), int(info.get("Size", 0)), seconds, log_path)
    log(f"built {tag} ({result.image_id}) in {seconds:.0f}s, {result.size_gb:.2f} GB")
    if on_progress:
        on_progress(Progress("done", f"{tag}: {result.size_gb:.2f} GB"))
    return result
