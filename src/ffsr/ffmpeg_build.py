"""Native FFmpeg builds: run docker/build-ffmpeg.sh into a cache directory keyed by
everything that changes the binary, so a second call is a no-op."""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from ffsr.backends import get_backend
from ffsr.errors import FfsrError
from ffsr.paths import DOCKER_DIR, ffmpeg_builds_dir, sources_dir
from ffsr.versions import ffmpeg_version, installed_versions, pinned

BUILD_SCRIPT = DOCKER_DIR / "build-ffmpeg.sh"
COMPLETE_MARKER = "ffsr-build.json"
# The runtime wheel each backend links against (its version is part of the cache key).
RUNTIME_DISTRIBUTIONS = {"onnx": ("onnxruntime", "onnxruntime-gpu"), "openvino": ("openvino",),
                         "torch": ("torch",),
                         "tensorflow": ("tensorflow",)}


# The default build links only the fast CPU/GPU runtimes: every start of a binary linked to
# LibTorch (a CUDA build from PyPI) and TensorFlow costs ~0.9 s of library loading and
# static initialisers, measured with perf (docs/ffmpeg-dnn.md). `--backends` adds them.
DEFAULT_BACKENDS = ("onnx", "openvino")


@dataclass(frozen=True)
class BuildConfig:
    """What one native build is made of."""

    backends: tuple[str, ...] = DEFAULT_BACKENDS
    cuda: bool = False
    python: str = sys.executable
    source: str = "debian"

    def __post_init__(self) -> None:
        for b in self.backends:
            get_backend(b)  # unknown names fail here with a clear sentence

    def runtime_versions(self) -> dict[str, str]:
        """Installed versions of the runtime wheels in the build's Python environment."""
        code = (
            "import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for d in sys.argv[1:]:\n"
            "    try: out[d] = m.version(d)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))\n"
        )
        dists = [d for b in self.backends for d in RUNTIME_DISTRIBUTIONS[b]]
        if self.python == sys.executable:
            return installed_versions(dists)
        out = subprocess.run([self.python, "-c", code, *dists], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def key(self) -> str:
        """Hash of what changes the binary: the build script, the patches, the FFmpeg
        release, the options, the Python environment whose runtime libraries it links
        and their versions (not docs or Docker-only pins)."""
        h = hashlib.sha256()
        for f in [BUILD_SCRIPT, *sorted((DOCKER_DIR / "patches").glob("*.patch"))]:
            h.update(f.name.encode() + b"\0" + f.read_bytes())
        pins = pinned()
        # The binary's RPATH points into this Python environment's wheels.
        h.update(json.dumps({"backends": sorted(self.backends), "cuda": self.cuda,
                             "python_env": str(Path(self.python).absolute().parent),
                             "ffmpeg": [pins["FFMPEG_VERSION"], pins["FFMPEG_SHA256"]],
                             "runtimes": self.runtime_versions()}, sort_keys=True).encode())
        return h.hexdigest()[:12]

    def prefix(self) -> Path:
        label = "-".join(sorted(self.backends)) or "nodnn"
        flavour = "cuda" if self.cuda else "cpu"
        return ffmpeg_builds_dir() / f"{ffmpeg_version()}-{label}-{flavour}-{self.key()}"


def cached_build(config: BuildConfig) -> Path | None:
    """The ffmpeg binary of a finished build of this configuration, if there is one."""
    prefix = config.prefix()
    if (prefix / COMPLETE_MARKER).is_file() and (prefix / "bin" / "ffmpeg").is_file():
        return prefix / "bin" / "ffmpeg"
    return None


def _built_backends(prefix: Path) -> set[str]:
    try:
        return set(json.loads((prefix / COMPLETE_MARKER).read_text()).get("backends", []))
    except (OSError, ValueError):
        return set()


def _links_resolve(prefix: Path) -> bool:
    """Its runtime libraries are still there: a build links into the venv it was made from,
    and a build made under another path (a moved checkout, another mount) cannot start."""
    links = prefix / "lib" / "ffsr-link"
    return not links.is_dir() or all(p.exists() for p in links.iterdir())


def latest_build(needs: Collection[str] = ()) -> Path | None:
    """The most recently finished build in the cache that has the ``needs`` backends and
    can start here."""
    root = ffmpeg_builds_dir()
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if (p / COMPLETE_MARKER).is_file()
            and (p / "bin" / "ffmpeg").is_file() and set(needs) <= _built_backends(p)
            and _links_resolve(p)]
    if not done:
        return None
    newest = max(done, key=lambda p: (p / COMPLETE_MARKER).stat().st_mtime)
    return newest / "bin" / "ffmpeg"


def build_ffmpeg(
    config: BuildConfig,
    *,
    jobs: int | None = None,
    force: bool = False,
    on_phase: Callable[[str, str], None] | None = None,
) -> Path:
    """Build FFmpeg for ``config`` unless the cache already has it; return the ffmpeg path."""
    prefix = config.prefix()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    # One build per configuration at a time: a second caller waits, then reuses it.
    with open(prefix.parent / f"{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and (done := cached_build(config)):
            return done
        return _build_locked(config, prefix, jobs, on_phase)


def _build_locked(config: BuildConfig, prefix: Path, jobs: int | None,
                  on_phase: Callable[[str, str], None] | None) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / COMPLETE_MARKER).unlink(missing_ok=True)
    log_path = prefix.parent / f"{prefix.name}.log"
    # The real path: the binary's RUNPATH names it, and a cache reached through a link (the
    # test suite's, a moved home) would leave a binary that cannot start once the link goes.
    cmd: Sequence[str] = [
        "bash", str(BUILD_SCRIPT), "--prefix", str(prefix.resolve()),
        "--backends", ",".join(config.backends) or "none", "--python", config.python,
        "--source", config.source, "--cache", str(sources_dir()),
    ]
    if config.cuda:
        cmd = [*cmd, "--cuda"]
    if jobs:
        cmd = [*cmd, "--jobs", str(jobs)]
    started = time.monotonic()
    errors: list[str] = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if line.startswith("==> ") and on_phase:
                phase, _, text = line[4:].rstrip().partition(": ")
                on_phase(phase, text)
            if "error:" in line:
                errors.append(line.strip())
        rc = proc.wait()
    if rc != 0:
        reason = errors[-1].split("error:", 1)[1].strip() if errors else f"exit status {rc}"
        raise FfsrError(f"The FFmpeg build failed: {reason}", log_path=str(log_path))
    info = {
        "ffmpeg_version": ffmpeg_version(),
        "backends": list(config.backends),
        "cuda": config.cuda,
        "runtimes": config.runtime_versions(),
        "python": config.python,
        "seconds": round(time.monotonic() - started, 1),
        "key": config.key(),
    }
    (prefix / COMPLETE_MARKER).write_text(json.dumps(info, indent=2) + "\n")
    return prefix / "bin" / "ffmpeg"
