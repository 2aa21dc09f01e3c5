"""The CLI surface and `ffsr doctor`, against the real binaries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ffsr import __version__

COMMANDS = ["build-ffmpeg", "doctor", "convert-model", "models", "upscale", "graph",
            "build-image", "bench"]


def ffsr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_version() -> None:
    proc = ffsr("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"ffsr {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    proc = ffsr(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_doctor_lists_the_four_backends(ffmpeg_bin: Path) -> None:
    proc = ffsr("doctor", env={"FFSR_FFMPEG": str(ffmpeg_bin)})
    assert proc.returncode == 0, proc.stderr
    for backend in ("onnx", "openvino", "torch", "tensorflow"):
        line = next(ln for ln in proc.stderr.splitlines() if f"backend {backend}" in ln)
        assert line.startswith("ok"), line
    assert "9.0.2" in proc.stderr


def test_doctor_says_a_plain_ffmpeg_lacks_the_backends() -> None:
    debian = Path("/usr/bin/ffmpeg")
    if not debian.exists():
        pytest.skip("Debian's ffmpeg is not installed (apt-get install ffmpeg)")
    proc = ffsr("doctor", env={"FFSR_FFMPEG": str(debian)})
    assert proc.returncode == 1
    assert "missing: this ffmpeg was not configured with --enable-libonnxruntime" in proc.stderr
    assert "cannot upscale" in proc.stderr


def test_build_ffmpeg_is_a_no_op_when_cached(ffmpeg_bin: Path) -> None:
    if os.environ.get("FFSR_TEST_FFMPEG"):
        pytest.skip("testing another ffmpeg")
    proc = ffsr("build-ffmpeg")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(ffmpeg_bin)
    assert "already built" in proc.stderr


def test_build_ffmpeg_rejects_unknown_backend() -> None:
    proc = ffsr("build-ffmpeg", "--backends", "onnx,caffe")
    assert proc.returncode != 0
    assert "Unknown DNN backend 'caffe'" in proc.stderr
