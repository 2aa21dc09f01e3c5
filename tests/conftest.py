"""Shared fixtures: the real ffsr-built ffmpeg and the real data in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from ffsr.ffmpeg_build import BuildConfig, build_ffmpeg
from ffsr.ffmpeg_tools import FfmpegChoice
from ffsr.paths import SHARED_DATA_DIR


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA_DIR} (../shared beside the checkout)")
    return SHARED_DATA_DIR


@pytest.fixture(scope="session")
def clips(shared_data: Path) -> Path:
    return shared_data / "clips"


@pytest.fixture(scope="session")
def ffmpeg_bin() -> Path:
    """The ffsr build of FFmpeg with all three backends (built once, then reused)."""
    return build_ffmpeg(BuildConfig())


@pytest.fixture(scope="session")
def ffprobe_bin(ffmpeg_bin: Path) -> Path:
    return FfmpegChoice(ffmpeg_bin, "test").ffprobe
