"""Large frames (issue 11 part 5): the measured memory rule (src/ffsr/memory.py) predicts what
ffmpeg really takes, and a frame that would not fit is refused before any work, in one
sentence that says what it needs, what there is and what to do, with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ffsr.ffmpeg_tools import choose_ffmpeg
from ffsr.memory import MARGIN, MIB, available_bytes, estimate, probed_rule
from ffsr.memory_probe import chain_graph, measured_probes, peak_rss, probe_argv, rule_path
from ffsr.model_card import ModelCard
from ffsr.precision import resolve_precision

W, H = 640, 360


def ffsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)


@pytest.fixture(scope="module")
def big_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16000x16000 gray: ESPCN would need ~200 GiB, SRCNN (x2 pre-scale) ~900 GiB."""
    big = tmp_path_factory.mktemp("big") / "big.png"
    subprocess.run([str(choose_ffmpeg().ffmpeg), "-v", "error", "-f", "lavfi", "-i",
                    "color=c=gray:s=16000x16000,format=gray", "-frames:v", "1", str(big)],
                   check=True, timeout=300)
    return big


def refusal(proc: subprocess.CompletedProcess[str]) -> str:
    """The one-sentence refusal, checked for its parts."""
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("error: A 16000x16000 frame needs about"), message
    assert "GiB is available" in message and "downscale the input" in message, message
    return message


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_rule_predicts_ffmpegs_peak_memory(zoo_models: dict[str, ModelCard], backend: str) -> None:
    graph = ffsr("graph", "-m", "espcn", "--backend", backend, "--precision", "f32")
    assert graph.returncode == 0, graph.stderr
    ffmpeg = choose_ffmpeg({backend}).ffmpeg
    measured = peak_rss([str(ffmpeg), "-v", "error", "-f", "lavfi", "-i",
                         f"testsrc2=s={W}x{H}:r=25", "-frames:v", "2", "-vf",
                         graph.stdout.strip().splitlines()[-1], "-f", "null", "-"])
    assert measured is not None
    predicted = estimate([zoo_models["espcn"]], backend, W, H)
    assert predicted is not None
    assert abs(measured - predicted) <= 0.2 * measured, (measured >> 20, predicted >> 20)


def test_frame_too_large_for_memory_is_refused_before_any_work(zoo_models: dict[str, ModelCard],
                                                              big_png: Path, tmp_path: Path) -> None:
    proc = ffsr("upscale", str(big_png), "-m", "espcn", "-o", str(tmp_path / "out.png"))
    refusal(proc)
    need = estimate([zoo_models["espcn"]], "openvino", 16000, 16000)
    assert need is not None and need > available_bytes()
    assert "measuring" not in proc.stderr  # the seeded rule: nothing to measure
    assert list(tmp_path.iterdir()) == []


def test_model_without_a_rule_is_measured_once_then_refused(zoo_models: dict[str, ModelCard],
                                                            big_png: Path, tmp_path: Path) -> None:
    """SRCNN has no seeded rule: the first run measures it (two probes: the bound from the
    first does not clear 16000x16000), caches the probes, and refuses; the second run reads
    the cache and measures nothing."""
    ffmpeg = choose_ffmpeg({"onnx"}).ffmpeg
    cache = rule_path([zoo_models["srcnn"]], "onnx", resolve_precision("f32", "onnx"), ffmpeg)
    assert not cache.exists()
    args = ("upscale", str(big_png), "-m", "srcnn", "--backend", "onnx", "--precision", "f32",
            "-o", str(tmp_path / "out.png"))
    first = ffsr(*args)
    assert "measuring the memory srcnn needs on onnx (once)" in first.stderr, first.stderr
    assert "measured on this machine's ffmpeg" in refusal(first)
    probes = json.loads(cache.read_text())
    assert sorted(probes) == ["160x90", "320x180"], probes
    stamp = cache.stat().st_mtime_ns
    second = ffsr(*args)
    assert "measuring" not in second.stderr
    assert refusal(second).split(" but ")[0] == refusal(first).split(" but ")[0]
    assert cache.stat().st_mtime_ns == stamp
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("chain", "backend"), [(("srcnn",), "onnx"),
                                                (("srcnn", "espcn"), "openvino")])
def test_measured_rule_predicts_a_third_size(zoo_models: dict[str, ModelCard],
                                             chain: tuple[str, ...], backend: str) -> None:
    """The rule fitted from the 160x90 and 320x180 probes, with its margin, against ffmpeg's
    own peak at 640x360 (4x the larger probe's pixels). A chain is measured as a whole."""
    cards = [zoo_models[name] for name in chain]
    ffmpeg, precision = choose_ffmpeg({backend}).ffmpeg, resolve_precision("f32", backend)
    rule = probed_rule(measured_probes(cards, backend, precision, ffmpeg, 2, lambda _: None))
    assert rule is not None and rule.bytes_per_pixel > 0
    direct = peak_rss(probe_argv(ffmpeg, chain_graph(cards, backend, precision), W, H))
    assert direct is not None
    predicted = rule.need(W * H) * MARGIN
    assert abs(predicted - direct) <= 0.2 * direct, (predicted / MIB, direct / MIB)
