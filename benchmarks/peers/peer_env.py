"""The peer venv: vs-mlrt (VapourSynth + its OpenVINO and ONNX Runtime plugins +
BestSource) and the bare OpenVINO / ONNX Runtime wheels, in a Python >= 3.12 of its own
(ffsr's .venv may be older; vs-mlrt's wheels need 3.12).

Made on first use in ``benchmarks/.venv-vsmlrt`` (gitignored) from PyPI, and remade when
the requirements change; ``python benchmarks/peers/peer_env.py`` makes it ahead of time.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.versions import pinned

HERE = Path(__file__).resolve().parent
VENV = HERE.parent / ".venv-vsmlrt"
REQUIREMENTS = HERE / "requirements-vsmlrt.txt"
STAMP = "ffsr-requirements.sha256"
MIN_PYTHON = (3, 12)


@dataclass(frozen=True)
class PeerEnv:
    """How to run things in the peer venv."""

    python: Path
    vspipe: Path
    env: dict[str, str]
    """os.environ plus a private XDG_CONFIG_HOME holding the vapoursynth.toml that vspipe
    reads (written by `vapoursynth config`), so the user's own is left alone."""


def requirements() -> list[str]:
    """The requirement lines, with openvino/onnxruntime pinned to ffsr's versions."""
    lines = [ln.strip() for ln in REQUIREMENTS.read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    pins = pinned()
    for dist, key in (("openvino", "OPENVINO_VERSION"), ("onnxruntime", "ONNXRUNTIME_VERSION")):
        lines.append(f"{dist}=={pins[key]}" if key in pins else dist)
    return lines


def _python_version(python: Path) -> tuple[int, int] | None:
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def find_python() -> Path:
    """A Python >= 3.12, oldest first: $FFSR_PEER_PYTHON, this one, pyenv's versions, then
    python3.1x on PATH."""
    candidates: list[Path] = []
    if env := os.environ.get("FFSR_PEER_PYTHON"):
        candidates.append(Path(env))
    candidates.append(Path(sys.executable))
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"

    def key(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.name.split("."))

    if root.is_dir():
        versions = [p for p in root.iterdir() if re.fullmatch(r"3\.\d+\.\d+", p.name)]
        candidates += [p / "bin" / "python3" for p in sorted(versions, key=key)]
    for minor in range(MIN_PYTHON[1], 20):
        if found := shutil.which(f"python3.{minor}"):
            candidates.append(Path(found))
    for python in candidates:
        v = _python_version(python)
        if v and v >= MIN_PYTHON:
            return python
    raise FfsrError("vs-mlrt's wheels need Python >= 3.12 and none was found (looked at "
                    "$FFSR_PEER_PYTHON, python3.1x on PATH and ~/.pyenv/versions); install one, "
                    "e.g. `pyenv install 3.12`.")


def ensure(log: Callable[[str], None] = print) -> PeerEnv:
    """The peer venv, made or brought up to date with pip from PyPI if needed."""
    wanted = requirements()
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    python = VENV / "bin" / "python"
    stamp = VENV / STAMP
    if not (python.exists() and stamp.exists() and stamp.read_text().strip() == digest):
        if not python.exists():
            base = find_python()
            log(f"peer venv: making {VENV} with {base} (vs-mlrt from PyPI, a few minutes once)")
            subprocess.run([str(base), "-m", "venv", str(VENV)], check=True)
        else:
            log(f"peer venv: installing the requirements into {VENV}")
        res = subprocess.run([str(python), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", *wanted],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise FfsrError(f"pip could not install the peer venv ({' '.join(wanted)}): "
                            f"{res.stderr.strip()[-800:]}")
        stamp.write_text(digest + "\n")
    config_home = VENV / "xdg-config"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    if not (config_home / "vapoursynth" / "vapoursynth.toml").exists():
        res = subprocess.run([str(VENV / "bin" / "vapoursynth"), "config"], env=env,
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise FfsrError(f"`vapoursynth config` failed: {(res.stderr or res.stdout)[-400:]}")
    return PeerEnv(python, VENV / "bin" / "vspipe", env)


if __name__ == "__main__":
    peer = ensure()
    print(f"peer venv ready: {peer.python} (vspipe {peer.vspipe})")
