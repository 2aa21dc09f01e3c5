"""The CLI surface and `ffsr doctor`, against the real binaries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import no_ffsr_build_env

from ffsr import __version__

COMMANDS = ["build-ffmpeg", "doctor", "convert-model", "models", "upscale", "graph",
            "build-image", "bench", "segments"]


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


def test_doctor_finds_ffsrs_own_build_by_default(ffmpeg_bin: Path) -> None:
    """Default discovery: doctor names the build ffsr picks itself (the default onnx+openvino
    configuration when it is built), its version as the binary says it, and its backends."""
    from ffsr.ffmpeg_tools import capabilities, choose_ffmpeg
    from ffsr.paths import ffmpeg_builds_dir

    chosen = choose_ffmpeg()
    assert ffmpeg_builds_dir().resolve() in chosen.ffmpeg.resolve().parents
    proc = ffsr("doctor")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    first = next(ln for ln in lines if ln.split()[1:2] == ["ffmpeg"])
    assert first.startswith("ok") and f" {chosen.ffmpeg} (" in first, first
    assert first.endswith(", version 9.0.2"), first  # asked from the binary, not read from its path
    has = capabilities(chosen.ffmpeg).dnn_backends
    assert {"onnx", "openvino"} <= has
    for backend in ("onnx", "openvino", "torch", "tensorflow"):
        line = next(ln for ln in lines if f"backend {backend} " in ln)
        assert line.startswith("ok" if backend in has else "no"), line


def test_doctor_with_ffsr_ffmpeg_lists_the_four_backends(ffmpeg_bin: Path) -> None:
    proc = ffsr("doctor", env={"FFSR_FFMPEG": str(ffmpeg_bin)})
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert f" {ffmpeg_bin} (FFSR_FFMPEG is set), version 9.0.2" in first, first
    for backend in ("onnx", "openvino", "torch", "tensorflow"):
        line = next(ln for ln in proc.stderr.splitlines() if f"backend {backend} " in ln)
        assert line.startswith("ok"), line


def test_doctor_says_a_plain_ffmpeg_lacks_the_backends(tmp_path: Path) -> None:
    """No ffsr build in the cache: doctor names the ffmpeg on PATH it fell back to (Debian's)
    and says it cannot upscale."""
    debian = Path("/usr/bin/ffmpeg")
    if not debian.exists():
        pytest.fail("Debian's ffmpeg is missing (.ci/run installs it: apt-get install ffmpeg)")
    proc = ffsr("doctor", env=no_ffsr_build_env(tmp_path))
    assert proc.returncode == 1
    first = next(ln for ln in proc.stderr.splitlines() if ln.split()[1:2] == ["ffmpeg"])
    assert f" {debian} (first ffmpeg on PATH" in first, first
    assert "missing: this ffmpeg was not configured with --enable-libonnxruntime" in proc.stderr
    assert "cannot upscale" in proc.stderr


def test_build_ffmpeg_is_a_no_op_when_cached(ffmpeg_bin: Path) -> None:
    if os.environ.get("FFSR_TEST_FFMPEG"):
        pytest.skip("testing another ffmpeg")
    from ffsr.ffmpeg_build import BuildConfig, cached_build

    lean = cached_build(BuildConfig())
    if lean is None:
        pytest.skip("the default build (onnx+openvino) is not made yet: scripts/setup makes it")
    proc = ffsr("build-ffmpeg")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(lean)
    assert "already built" in proc.stderr
    proc = ffsr("build-ffmpeg", "--backends", "onnx,openvino,torch,tensorflow")
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve() == ffmpeg_bin.resolve()
    assert "already built" in proc.stderr


def test_build_ffmpeg_rejects_unknown_backend() -> None:
    proc = ffsr("build-ffmpeg", "--backends", "onnx,caffe")
    assert proc.returncode != 0
    assert "Unknown DNN backend 'caffe'" in proc.stderr
