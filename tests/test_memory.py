"""Large frames (issue 11 part 5): the measured memory rule (src/ffsr/memory.py) predicts what
ffmpeg really takes, and a frame that would not fit is refused before any work, in one
sentence that says what it needs, what there is and what to do, with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ffsr.ffmpeg_tools import choose_ffmpeg
from ffsr.memory import available_bytes, estimate
from ffsr.model_card import ModelCard

W, H = 640, 360


def ffsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)


# Linux carries the parent's RSS high-water mark across fork+exec into the child's
# ru_maxrss, and this test process holds ~1.4 GB (torch, TensorFlow): ffmpeg is started
# from a small interpreter that reports its child's peak.
PEAK = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
sys.exit(proc.stderr.read().decode()[-500:] if status else print(usage.ru_maxrss * 1024))
"""


def peak_rss(argv: list[str]) -> int:
    """ffmpeg's own peak resident memory in bytes."""
    proc = subprocess.run([sys.executable, "-c", PEAK, *argv], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_rule_predicts_ffmpegs_peak_memory(zoo_models: dict[str, ModelCard], backend: str) -> None:
    graph = ffsr("graph", "-m", "espcn", "--backend", backend, "--precision", "f32")
    assert graph.returncode == 0, graph.stderr
    ffmpeg = choose_ffmpeg({backend}).ffmpeg
    measured = peak_rss([str(ffmpeg), "-v", "error", "-f", "lavfi", "-i",
                         f"testsrc2=s={W}x{H}:r=25", "-frames:v", "2", "-vf",
                         graph.stdout.strip().splitlines()[-1], "-f", "null", "-"])
    predicted = estimate([zoo_models["espcn"]], backend, W, H)
    assert predicted is not None
    assert abs(measured - predicted) <= 0.2 * measured, (measured >> 20, predicted >> 20)


def test_frame_too_large_for_memory_is_refused_before_any_work(zoo_models: dict[str, ModelCard],
                                                              tmp_path: Path) -> None:
    big = tmp_path / "big.png"  # 16000x16000: ESPCN would need ~200 GiB
    ffmpeg = choose_ffmpeg().ffmpeg
    subprocess.run([str(ffmpeg), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=16000x16000,format=gray",
                    "-frames:v", "1", str(big)], check=True, timeout=300)
    proc = ffsr("upscale", str(big), "-m", "espcn", "-o", str(tmp_path / "out.png"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    need = estimate([zoo_models["espcn"]], "openvino", 16000, 16000)
    assert need is not None and need > available_bytes()
    assert message.startswith("error: A 16000x16000 frame needs about"), message
    assert "GiB is available" in message and "downscale the input" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png"]
