"""Where ffsr's own files live (templates, build script, model manifests) and its caches.

ffsr is installed from a checkout (``pip install -e .``): the templates, the FFmpeg
build script and the model manifests are read from the source tree, the same files a
user can open and copy.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = PROJECT_ROOT / "docker"
FILTERGRAPHS_DIR = PROJECT_ROOT / "filtergraphs"
MODELS_DIR = PROJECT_ROOT / "models"
DEPLOY_DIR = PROJECT_ROOT / "deploy"
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"


def cache_dir() -> Path:
    """Root of ffsr's caches: ``$FFSR_CACHE_DIR`` or ``~/.cache/ffsr``."""
    env = os.environ.get("FFSR_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ffsr"


def ffmpeg_builds_dir() -> Path:
    return cache_dir() / "ffmpeg"


def sources_dir() -> Path:
    return cache_dir() / "sources"


def converted_models_dir() -> Path:
    """Converted models: ``$FFSR_MODELS_DIR`` or the ``models`` folder of the cache."""
    env = os.environ.get("FFSR_MODELS_DIR")
    return Path(env).expanduser() if env else cache_dir() / "models"
