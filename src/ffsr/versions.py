"""The pinned versions, read from the one file that holds them: docker/versions.env."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from contextlib import suppress
from functools import lru_cache

from ffsr.paths import DOCKER_DIR


@lru_cache(maxsize=1)
def pinned() -> dict[str, str]:
    """Return KEY -> value from docker/versions.env (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for raw in (DOCKER_DIR / "versions.env").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def ffmpeg_version() -> str:
    return pinned()["FFMPEG_VERSION"]


def installed_versions(distributions: Iterable[str]) -> dict[str, str]:
    """Versions of the given distributions installed in this Python (absent ones skipped)."""
    found = {}
    for dist in distributions:
        with suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    return found
