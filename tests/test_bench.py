"""ffsr.bench: the pure parts (steady state, ratios, parsing), then one tiny real run of
every path and of the video quality check. No timing assertions: speed is for
benchmarks/run.py, these only prove the measurements run and make sense."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ffsr import bench
from ffsr.bench import Measurement
from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import Capabilities
from ffsr.model_card import ModelCard, ModelFile, load_card


def card(files: dict[str, int], directory: Path = Path(".")) -> ModelCard:
    """A Y-channel x2 card whose files are {backend: channels}."""
    suffix = {"onnx": "onnx", "torch": "pt", "tensorflow": "pb"}
    return ModelCard(name="tiny", arch="espcn", scale=2, model_scale=2, color="y",
                     files={b: ModelFile(b, f"tiny.{suffix[b]}", "", channels=c)
                            for b, c in files.items()},
                     source={}, licence="MIT", directory=directory)


def m(label: str, fps: float | None, frames: int = 10, wall: float = 1.0) -> Measurement:
    path, _, backend = label.partition(" ") if label.startswith("ffsr") else (label, "", "")
    return Measurement(path, backend, frames, wall, fps, 100.0)


# ---------------------------------------------------------------- pure parts


def test_steady_fps_starts_at_the_first_frame_out() -> None:
    # 1.5 s of start-up with no frames, then 10 frames per 0.5 s; the final count comes
    # late with the end of the run and is left out.
    samples = [(0.5, 0), (1.5, 0), (2.0, 10), (2.5, 20), (2.7, 20), (3.0, 30), (3.5, 40),
               (3.6, 40), (5.0, 41)]
    assert bench.steady_fps(samples) == pytest.approx(20.0)


@pytest.mark.parametrize("samples", [[], [(1.0, 0), (2.0, 0)], [(1.0, 5)], [(1.0, 5), (2.0, 9)],
                                     [(1.0, 5), (1.01, 9), (2.0, 10)], [(1.0, 5), (2.0, 5)]])
def test_steady_fps_is_unknown_without_a_real_window(samples: list[tuple[float, int]]) -> None:
    assert bench.steady_fps(samples) is None


def test_frames_for_keeps_runs_short_but_long_enough() -> None:
    assert bench.frames_for(10.0, 2.0) == 20
    assert bench.frames_for(1000.0, 3.0) == 60
    assert bench.frames_for(0.1, 3.0) == 4


def test_rss_by_file_groups_mappings() -> None:
    smaps = """\
55d0c0000000-55d0c0100000 r-xp 00000000 08:01 123 /usr/lib/libtorch_cpu.so
Size:               1024 kB
Rss:                 512 kB
55d0c0100000-55d0c0200000 r--p 00100000 08:01 123 /usr/lib/libtorch_cpu.so
Rss:                 512 kB
55d0c1000000-55d0c2000000 rw-p 00000000 00:00 0 [heap]
Rss:                2048 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
Rss:                1024 kB
"""
    assert bench.rss_by_file(smaps) == {"libtorch_cpu.so": 1.0, "[heap]": 2.0, "[anon]": 1.0}


def test_summarize_compares_within_one_run() -> None:
    ms = [m("ffsr onnx", 20.0, frames=40, wall=4.0), m("python pipeline", 16.0),
          m("png round trip", 4.0, frames=40, wall=20.0), m("ceiling", 21.0)]
    s = bench.summarize(ms)
    assert s.ffsr_fps == 20.0
    assert s.of_ceiling == pytest.approx(20 / 21)
    assert s.vs_python == pytest.approx(1.25)
    assert s.vs_png == pytest.approx(5.0)
    assert bench.summarize(ms, "torch") == bench.Summary(None, None, None, None)


def test_best_of_keeps_the_least_disturbed_run() -> None:
    assert bench.best_of([m("ceiling", 10.0), m("ceiling", 12.0), m("ceiling", 9.0)]).fps == 12.0
    slow, fast = m("png round trip", None, wall=4.0), m("png round trip", None, wall=2.0)
    assert bench.best_of([slow, fast]) is fast  # no steady state: whole-run fps decides


def test_measurement_falls_back_to_whole_run_fps() -> None:
    assert m("ffsr onnx", None, frames=10, wall=2.0).fps == 5.0
    assert m("ffsr onnx", None).label == "ffsr onnx"


def test_markdown_table_shape() -> None:
    table = bench.measurement_table([m("ffsr onnx", 20.0), m("ceiling", None)])
    lines = table.splitlines()
    assert len(lines) == 4 and lines[1].startswith("|---|")
    assert lines[2].startswith("| ffsr onnx | 10 | 20.0 |")
    assert "| ceiling | 10 | – |" in lines[3]


def test_parse_quality_log() -> None:
    log = """\
[psnr@m0 @ 0x55] PSNR y:31.25 u:38.1 v:39.0 average:32.8 min:30.1 max:33.3
[ssim@m0 @ 0x56] SSIM Y:0.949 (12.9) U:0.97 (15.4) V:0.97 (15.6) All:0.956 (13.6)
[psnr@m1 @ 0x57] PSNR y:inf u:inf v:inf average:inf min:inf max:inf
[ssim@m1 @ 0x58] SSIM Y:1.000000 (inf) U:1.000000 (inf) V:1.000000 (inf) All:1.000000 (inf)
"""
    assert bench.parse_quality_log(log) == {"m0": (31.25, 0.949), "m1": (float("inf"), 1.0)}


def test_bench_backends() -> None:
    caps = Capabilities("9.0.2", frozenset({"dnn_processing"}), frozenset({"onnx", "torch"}))
    full = card({"onnx": 1, "torch": 3, "tensorflow": 1})
    assert bench.choose_bench_backends("all", full, caps) == ["onnx", "torch"]
    assert bench.choose_bench_backends("auto", full, caps) == ["onnx"]
    assert bench.choose_bench_backends("torch,onnx", full, caps) == ["torch", "onnx"]
    with pytest.raises(FfsrError, match="tensorflow"):
        bench.choose_bench_backends("tensorflow", full, caps)
    with pytest.raises(FfsrError, match=r"no \.onnx"):
        bench.choose_bench_backends("auto", card({"torch": 3}), caps)


# ---------------------------------------------------------------- tiny real runs


@pytest.fixture(scope="module")
def tiny_card(espcn_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    """The fixed-weight ESPCN as a converted ONNX model with a card on disk."""
    d = tmp_path_factory.mktemp("tiny")
    shutil.copy(espcn_files["onnx"], d / "tiny.onnx")
    return load_card(card({"onnx": 1}, d).save(d))


@pytest.fixture(scope="module")
def tools(ffmpeg_bin: Path, ffprobe_bin: Path) -> bench.Tools:
    return bench.Tools(ffmpeg_bin, ffprobe_bin, Path(shutil.which("ffmpeg") or ffmpeg_bin))


@pytest.mark.ffmpeg
def test_every_path_runs_on_a_tiny_clip(tools: bench.Tools, tiny_card: ModelCard,
                                        clips: Path) -> None:
    ms = bench.bench_clip(clips / "carphone_176x144.mp4", tiny_card, ["onnx"], frames=4,
                          floor_seconds=0.3, tools=tools)
    assert [x.label for x in ms] == ["ffsr onnx", "python pipeline", "png round trip",
                                     "ceiling", "lanczos", "bicubic"]
    for x in ms:
        assert x.fps > 0 and x.wall_s > 0 and x.peak_mb > 0, x
    assert all(x.frames == 4 for x in ms[:4])
    assert [k for k, _ in ms[2].phases] == ["extract", "images", "model", "assemble"]
    s = bench.summarize(ms)
    assert s.of_ceiling and s.vs_python and s.vs_png


@pytest.mark.ffmpeg
def test_video_quality_with_ffmpeg_filters(tools: bench.Tools, tiny_card: ModelCard,
                                           clips: Path) -> None:
    scores = bench.video_quality(tools.ffmpeg, tools.ffprobe, clips / "carphone_176x144.mp4", 2,
                                 [tiny_card], frames=2)
    assert [s.method for s in scores] == ["bicubic", "lanczos", "tiny"]
    by = {s.method: s for s in scores}
    assert 25 < by["bicubic"].psnr_y < 45 and 0.8 < by["bicubic"].ssim_y <= 1
    assert by["lanczos"].psnr_y > by["bicubic"].psnr_y - 1
    assert 0 < by["tiny"].ssim_y <= 1  # fixed random weights: no quality claim


@pytest.mark.ffmpeg
def test_bench_command_prints_the_table(ffmpeg_bin: Path, tiny_card: ModelCard, clips: Path,
                                        tmp_path: Path) -> None:
    card_path = tiny_card.directory / "tiny.card.json"
    proc = subprocess.run([sys.executable, "-m", "ffsr", "bench",
                           str(clips / "carphone_176x144.mp4"), "-m", str(card_path),
                           "--frames", "3", "--plot", str(tmp_path / "bench.png")],
                          capture_output=True, text=True, timeout=300)  # the default ffmpeg
    assert proc.returncode == 0, proc.stderr
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| ")]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows[1:]] == [
        "ffsr onnx", "python pipeline", "png round trip", "ceiling", "lanczos", "bicubic"]
    assert "of the model-only ceiling" in proc.stdout
    assert (tmp_path / "bench.png").stat().st_size > 1000


def test_bench_backend_list_times_each_named_backend(zoo_models: dict[str, ModelCard],
                                                     clips: Path) -> None:
    """`ffsr bench --backend onnx,torch`: one ffsr row per backend named, in that order, and
    not the one auto would take (openvino)."""
    proc = subprocess.run([sys.executable, "-m", "ffsr", "bench",
                           str(clips / "carphone_176x144.mp4"), "-m", "espcn", "--frames", "3",
                           "--backend", "onnx,torch"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| ")]
    ffsr_rows = [r.split(" | ")[0].lstrip("| ") for r in rows[1:] if r.startswith("| ffsr ")]
    assert ffsr_rows == ["ffsr onnx", "ffsr torch"], proc.stdout
