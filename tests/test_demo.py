"""The README's first command, `scripts/demo`, run as the README gives it: set up (cached
here and in CI), convert ESPCN on first use, upscale the bundled sample clip 2x."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ffsr.media import count_frames, probe
from ffsr.paths import PROJECT_ROOT

SAMPLE = "carphone_176x144.mp4"


@pytest.mark.slow
def test_demo_upscales_the_bundled_sample_2x(ffmpeg_bin: Path, ffprobe_bin: Path,
                                              clips: Path) -> None:
    """`scripts/demo` with no argument writes out/carphone_176x144_x2.mp4 (the name it prints):
    twice the sample's size, every frame."""
    out = PROJECT_ROOT / "out" / f"{Path(SAMPLE).stem}_x2.mp4"
    existed = out.exists()
    try:
        proc = subprocess.run([str(PROJECT_ROOT / "scripts" / "demo")], capture_output=True,
                              text=True, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"wrote out/{out.name}" in proc.stdout + proc.stderr, proc.stdout[-2000:]
        src, got = probe(ffprobe_bin, clips / SAMPLE), probe(ffprobe_bin, out)
        assert (got.width, got.height) == (2 * src.width, 2 * src.height)
        assert count_frames(ffprobe_bin, out) == count_frames(ffprobe_bin, clips / SAMPLE)
    finally:
        if not existed:
            out.unlink(missing_ok=True)
