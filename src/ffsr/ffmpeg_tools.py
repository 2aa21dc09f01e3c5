"""Which ffmpeg ffsr uses, and what that binary can really do (asked from the binary)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ffsr.backends import BACKENDS, get_backend
from ffsr.errors import FfsrError
from ffsr.ffmpeg_build import BuildConfig, cached_build, latest_build


@dataclass(frozen=True)
class FfmpegChoice:
    ffmpeg: Path
    reason: str

    @property
    def ffprobe(self) -> Path:
        sibling = self.ffmpeg.with_name("ffprobe")
        if sibling.exists():
            return sibling
        found = shutil.which("ffprobe")
        if not found:
            raise FfsrError("No ffprobe found next to ffmpeg or on PATH.")
        return Path(found)


def choose_ffmpeg() -> FfmpegChoice:
    """$FFSR_FFMPEG, else the ffsr build for the default configuration, else the newest
    ffsr build in the cache, else ffmpeg on PATH."""
    env = os.environ.get("FFSR_FFMPEG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise FfsrError(f"FFSR_FFMPEG points to {env}, which does not exist.")
        return FfmpegChoice(path, "FFSR_FFMPEG is set")
    if built := cached_build(BuildConfig()):
        return FfmpegChoice(built, "ffsr build for the default configuration (ffsr build-ffmpeg)")
    if built := latest_build():
        return FfmpegChoice(built, "newest ffsr build in the cache")
    on_path = shutil.which("ffmpeg")
    if on_path:
        return FfmpegChoice(Path(on_path), "first ffmpeg on PATH (no ffsr build found)")
    raise FfsrError("No ffmpeg found: run `ffsr build-ffmpeg` (or set FFSR_FFMPEG).")


@dataclass(frozen=True)
class Capabilities:
    """What one ffmpeg binary has, asked from it."""

    version: str
    filters: frozenset[str]
    dnn_backends: frozenset[str]
    encoders: frozenset[str] = field(default_factory=frozenset)
    configuration: str = ""

    def require_backend(self, backend: str, filter_name: str = "dnn_processing") -> None:
        get_backend(backend)
        if filter_name not in self.filters:
            raise FfsrError(f"This ffmpeg ({self.version}) has no {filter_name} filter; "
                            "run `ffsr build-ffmpeg` for one that does.")
        if backend not in self.dnn_backends:
            have = ", ".join(sorted(self.dnn_backends)) or "none"
            raise FfsrError(f"This ffmpeg ({self.version}) lacks the {backend} DNN backend "
                            f"(it has: {have}); run `ffsr build-ffmpeg --backends {backend}`.")


def _run(ffmpeg: Path, *args: str) -> str:
    try:
        out = subprocess.run([str(ffmpeg), "-hide_banner", *args], capture_output=True,
                             text=True, timeout=60)
    except OSError as e:
        raise FfsrError(f"Cannot run {ffmpeg}: {e.strerror}.") from e
    return out.stdout + out.stderr


@lru_cache(maxsize=8)
def capabilities(ffmpeg: Path) -> Capabilities:
    """Ask the binary for its version, configuration, filters and encoders."""
    version_text = _run(ffmpeg, "-version")
    m = re.search(r"ffmpeg version (\S+)", version_text)
    version = m.group(1) if m else "unknown"
    conf = re.search(r"configuration: (.*)", version_text)
    filters = frozenset(re.findall(r"^\s*[TSC.]{2,3}\s+(\w+)\s", _run(ffmpeg, "-filters"), re.M))
    encoders = frozenset(re.findall(r"^\s*[VAS][F.][S.][X.][B.][D.]\s+(\S+)",
                                    _run(ffmpeg, "-encoders"), re.M))
    configuration = conf.group(1) if conf else ""
    # A backend is there when the binary was configured with it and has the DNN filters.
    backends = {b.name for b in BACKENDS.values()
                if b.configure_flag in configuration.split() and "dnn_processing" in filters}
    return Capabilities(version=version, filters=filters, dnn_backends=frozenset(backends),
                        encoders=encoders, configuration=configuration)
