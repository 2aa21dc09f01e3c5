"""Which ffmpeg ffsr uses, and what that binary can really do (asked from the binary)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ffsr.backends import BACKENDS, get_backend
from ffsr.errors import FfsrError
from ffsr.ffmpeg_build import BuildConfig, cached_build, latest_build
from ffsr.paths import cache_dir


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


def choose_ffmpeg(needs: Collection[str] = ()) -> FfmpegChoice:
    """$FFSR_FFMPEG, else the ffsr build for the default configuration (when it has the
    ``needs`` backends), else the newest ffsr build that has them, else ffmpeg on PATH."""
    env = os.environ.get("FFSR_FFMPEG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise FfsrError(f"FFSR_FFMPEG points to {env}, which does not exist.")
        return FfmpegChoice(path, "FFSR_FFMPEG is set")
    default = BuildConfig()
    if set(needs) <= set(default.backends) and (built := cached_build(default)):
        return FfmpegChoice(built, "ffsr build for the default configuration (ffsr build-ffmpeg)")
    if built := latest_build(needs):
        with_ = f" with {', '.join(sorted(needs))}" if needs else ""
        return FfmpegChoice(built, f"newest ffsr build in the cache{with_}")
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


def binary_identity(ffmpeg: Path) -> str:
    """What identifies one binary: its real path, size and modification time."""
    real = ffmpeg.resolve()
    try:
        st = real.stat()
    except OSError as e:
        raise FfsrError(f"Cannot run {ffmpeg}: {e.strerror}.") from e
    return hashlib.sha256(f"{real}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _ask(ffmpeg: Path) -> dict[str, str]:
    """The three answers, asked at once: each start of a binary that links the DNN runtimes
    costs up to a second (they load TensorFlow, LibTorch, OpenVINO)."""
    questions = ("-version", "-filters", "-encoders")
    with ThreadPoolExecutor(len(questions)) as pool:
        answers = list(pool.map(lambda q: _run(ffmpeg, q), questions))
    return dict(zip(questions, answers, strict=True))


def _cached_answers(ffmpeg: Path) -> dict[str, str]:
    """The binary's answers from the cache, keyed by its identity (asked once per build)."""
    path = cache_dir() / "capabilities" / f"{binary_identity(ffmpeg)}.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        pass
    answers = _ask(ffmpeg)
    if "ffmpeg version" in answers["-version"]:  # never cache a failed start
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(answers))
        os.replace(tmp, path)
    return answers


@lru_cache(maxsize=8)
def capabilities(ffmpeg: Path) -> Capabilities:
    """The binary's version, configuration, filters and encoders (cached per binary)."""
    answers = _cached_answers(ffmpeg)
    version_text = answers["-version"]
    m = re.search(r"ffmpeg version (\S+)", version_text)
    version = m.group(1) if m else "unknown"
    conf = re.search(r"configuration: (.*)", version_text)
    filters = frozenset(re.findall(r"^\s*[TSC.]{2,3}\s+(\w+)\s", answers["-filters"], re.M))
    encoders = frozenset(re.findall(r"^\s*[VAS][F.][S.][X.][B.][D.]\s+(\S+)",
                                    answers["-encoders"], re.M))
    configuration = conf.group(1) if conf else ""
    # A backend is there when the binary was configured with it and has the DNN filters.
    backends = {b.name for b in BACKENDS.values()
                if b.configure_flag in configuration.split() and "dnn_processing" in filters}
    return Capabilities(version=version, filters=filters, dnn_backends=frozenset(backends),
                        encoders=encoders, configuration=configuration)
