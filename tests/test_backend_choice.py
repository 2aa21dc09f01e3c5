"""`--backend auto` on the CPU (issue 9, "Choice"): the first run measures every backend that
could run the model chain, caches the numbers, and runs the fastest; later runs read the
record. Real ffmpeg, real models, each test with a cache of its own (no measurement yet)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env

from ffsr.backend_choice import PROBE, record_path
from ffsr.model_card import ModelCard
from ffsr.paths import converted_models_dir
from ffsr.precision import resolve_precision

CLIP = "carphone_176x144.mp4"
SIZE = "x".join(map(str, PROBE))


@pytest.fixture
def env(zoo_models: dict[str, ModelCard], tmp_path: Path) -> dict[str, str]:
    """A cache home with the session's ffmpeg builds and converted models, and nothing measured."""
    env = clean_env(tmp_path / "cache")
    (tmp_path / "cache" / "ffsr" / "models").symlink_to(converted_models_dir(), target_is_directory=True)
    return env


def ffsr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def records(env: dict[str, str]) -> dict[Path, dict[str, object]]:
    folder = Path(env["XDG_CACHE_HOME"]) / "ffsr" / "backend-choice"
    return {p: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def ran(proc: subprocess.CompletedProcess[str]) -> str:
    """The backend the run used, from its --json result."""
    return str(json.loads(proc.stdout)["backend"])


def test_first_run_measures_and_runs_the_fastest_later_runs_reuse_it(env: dict[str, str],
                                                                      clips: Path,
                                                                      tmp_path: Path) -> None:
    out = str(tmp_path / "out.mp4")
    assert records(env) == {}
    first = ffsr(env, "upscale", str(clips / CLIP), "-m", "espcn", "-o", out, "--json")
    [(path, record)] = records(env).items()
    fps = record["fps"]
    assert isinstance(fps, dict) and set(fps) == {"openvino", "onnx"}, record
    choice = max(fps, key=fps.__getitem__)
    assert all(v > 0 for v in fps.values()) and record["choice"] == choice, record
    assert ran(first) == choice
    [line] = [ln for ln in first.stderr.splitlines() if ln.startswith("backend auto:")]
    assert line.startswith(f"backend auto: {choice} (measured once on this CPU at {SIZE}: "), line
    assert line.endswith("; cached)") and "openvino" in line and "onnx" in line, line
    progress = [ln for ln in first.stderr.splitlines() if CLIP in ln]
    assert progress and progress[0].startswith(choice), first.stderr  # the progress line names it

    stamp = path.stat().st_mtime_ns
    second = ffsr(env, "upscale", str(clips / CLIP), "-m", "espcn", "-o", out, "--overwrite",
                  "--json")
    assert ran(second) == choice
    assert f"backend auto: {choice} (cached choice" in second.stderr, second.stderr
    assert "measured once" not in second.stderr
    graph = ffsr(env, "graph", "-m", "espcn")
    assert f"dnn_backend={choice}:" in graph.stdout and "cached choice" in graph.stderr, graph
    assert path.stat().st_mtime_ns == stamp and len(records(env)) == 1

    # Another precision is another record where it runs something else (auto is f32 here
    # unless the CPU has bf16 units); another model is always another record.
    f32 = ffsr(env, "graph", "-m", "espcn", "--precision", "f32")
    new = resolve_precision("auto", "openvino") != "f32"
    assert len(records(env)) == 1 + new and ("measured once" in f32.stderr) == new, f32.stderr
    srcnn = ffsr(env, "upscale", str(clips / CLIP), "-m", "srcnn", "-o", str(tmp_path / "s.mp4"),
                 "--frames", "5", "--json")
    assert "measured once" in srcnn.stderr, srcnn.stderr
    [other] = [r for r in records(env).values() if r["models"] == ["srcnn"]]
    fps = other["fps"]
    assert isinstance(fps, dict) and ran(srcnn) == max(fps, key=fps.__getitem__), other


def test_a_different_precision_or_model_is_keyed_apart(zoo_models: dict[str, ModelCard]) -> None:
    from ffsr.ffmpeg_tools import choose_ffmpeg

    ffmpeg = choose_ffmpeg().ffmpeg
    espcn, srcnn = [zoo_models["espcn"]], [zoo_models["srcnn"]]
    f32, bf16 = {"openvino": "f32", "onnx": None}, {"openvino": "bf16", "onnx": None}
    paths = {record_path(espcn, f32, ffmpeg), record_path(espcn, bf16, ffmpeg),
             record_path(srcnn, f32, ffmpeg)}
    assert len(paths) == 3


@pytest.mark.parametrize("content", ["{not json", '{"fps": {"onnx": "fast"}}'])
def test_an_unreadable_record_is_measured_again(env: dict[str, str], clips: Path,
                                                tmp_path: Path, content: str) -> None:
    ffsr(env, "graph", "-m", "espcn")
    [path] = records(env)
    path.write_text(content)
    again = ffsr(env, "graph", "-m", "espcn")
    assert "measured once" in again.stderr and "Traceback" not in again.stderr, again.stderr
    assert set(json.loads(path.read_text())["fps"]) == {"openvino", "onnx"}


def test_a_failing_measurement_says_why(ffmpeg_bin: Path, tmp_path: Path) -> None:
    """A candidate ffmpeg cannot run raises ffmpeg's reason (fastest_backend logs it and that
    backend loses) instead of hanging or counting as fast."""
    from ffsr.backend_choice import measure_fps
    from ffsr.errors import FfsrError

    missing = tmp_path / "missing.onnx"
    with pytest.raises(FfsrError) as e:
        measure_fps(ffmpeg_bin, f"dnn_processing=dnn_backend=onnx:model={missing}:input=x:output=y")
    assert "Failed to create ONNX session" in e.value.message and str(missing) in e.value.message, e
