"""Batches and --json: a folder with a corrupt file, globs, names kept, one sentence per
failure, a summary, exit statuses; the real ffmpeg on the real clips."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env

from ffsr.batch import EXIT_SOME_FAILED, collect_batch
from ffsr.errors import FfsrError
from ffsr.media import count_frames, probe

FRAMES = 4


def ffsr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=env, timeout=1200)


@pytest.fixture()
def env(tmp_path: Path, ffmpeg_bin: Path, shared_data: Path) -> dict[str, str]:
    """A fresh cache with no models: the batch converts ESPCN itself (once), with the ffmpeg
    ffsr finds by default."""
    return clean_env(tmp_path / "cache")


def test_folder_with_a_corrupt_file(env: dict[str, str], ffprobe_bin: Path, clips: Path,
                                    tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["carphone_176x144.mp4", "newtonscradle_200x150.gif", "realshort_320x240.mp4"]
    for name in names:
        shutil.copy(clips / name, folder / name)
    (folder / "broken.mp4").write_bytes(os.urandom(50_000))
    (folder / "notes.txt").write_text("not a video")
    proc = ffsr(env, "upscale", str(folder), "-m", "espcn", "-o", str(tmp_path / "out"),
                "--frames", str(FRAMES), "--json")
    assert proc.returncode == EXIT_SOME_FAILED, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names
    for name in names:
        src, out = probe(ffprobe_bin, folder / name), probe(ffprobe_bin, tmp_path / "out" / name)
        assert (out.width, out.height) == (2 * src.width, 2 * src.height)
        assert count_frames(ffprobe_bin, tmp_path / "out" / name) == FRAMES
    failed = [ln for ln in proc.stderr.splitlines() if ln.startswith("failed:")]
    assert len(failed) == 1 and "broken.mp4" in failed[0], proc.stderr
    assert failed[0].count(". ") == 0 and failed[0].rstrip().endswith((".", ")")), failed[0]
    assert "3 of 4 files upscaled; failed: broken.mp4." in proc.stderr
    assert proc.stderr.count("converting espcn (first use)") == 1, "the model is converted once"
    doc = json.loads(proc.stdout)
    assert (doc["ok"], doc["succeeded"], doc["failed"]) == (False, 3, 1)
    by_name = {Path(r["input"]).name: r for r in doc["results"]}
    assert by_name["broken.mp4"]["ok"] is False and by_name["broken.mp4"]["error"]
    for name in names:
        r = by_name[name]
        assert r["ok"] and r["frames"] == FRAMES and Path(r["output"]) == tmp_path / "out" / name
        assert r["backend"] and r["models"] == ["espcn"] and isinstance(r["warnings"], list)


def test_glob_and_several_files_write_beside_their_inputs(env: dict[str, str], ffprobe_bin: Path,
                                                          clips: Path, tmp_path: Path) -> None:
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(clips / "carphone_176x144.mp4", tmp_path / name)
    shutil.copy(clips / "newtonscradle_200x150.gif", tmp_path / "c.gif")
    proc = ffsr(env, "upscale", str(tmp_path / "*.mp4"), str(tmp_path / "c.gif"), "-m", "espcn",
                "--frames", "2")
    assert proc.returncode == 0, proc.stderr
    for name in ("a_x2.mp4", "b_x2.mp4", "c_x2.gif"):
        assert count_frames(ffprobe_bin, tmp_path / name) == 2
    assert "3 of 3 files upscaled." in proc.stderr
    assert "total" in proc.stderr


def test_json_for_one_file(env: dict[str, str], clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "up.mkv"
    proc = ffsr(env, "upscale", str(clips / "carphone_176x144.mp4"), "-m", "espcn", "-o", str(out),
                "--frames", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["output"] == str(out) and out.exists()
    assert doc["frames"] == 3 and doc["fps"] > 0 and doc["frame_rate"]
    assert {"backend", "device", "precision", "warnings", "seconds"} <= set(doc)
    missing = ffsr(env, "upscale", str(tmp_path / "nope.mp4"), "-m", "espcn", "--json")
    assert missing.returncode == 1
    doc = json.loads(missing.stdout)
    assert doc["ok"] is False and "nope.mp4" in doc["error"]


def test_batch_refusals_are_one_sentence(tmp_path: Path) -> None:
    for name in ("a.mp4", "a.avi", "b.mp4"):
        (tmp_path / name).write_bytes(b"")
    a_file = tmp_path / "b.mp4"
    cases = [
        (lambda: collect_batch([tmp_path / "a.mp4", tmp_path / "b.mp4"], a_file), "is a file"),
        (lambda: collect_batch([tmp_path], tmp_path), "would be overwritten"),
        (lambda: collect_batch([tmp_path / "a.mp4", tmp_path / "a.avi"], tmp_path / "o"),
         "would both be written"),
        (lambda: collect_batch([tmp_path / "*.mkv"], None), "No file matches"),
        (lambda: collect_batch([tmp_path / "o"], None), "No video files in"),
    ]
    (tmp_path / "o").mkdir()
    for call, words in cases:
        with pytest.raises(FfsrError, match=words) as err:
            call()
        assert err.value.message.count(". ") == 0 and err.value.message.endswith("."), err.value.message


def test_one_named_file_is_not_a_batch(tmp_path: Path) -> None:
    batch = collect_batch([tmp_path / "x.mp4"], tmp_path / "y.mkv")
    assert not batch.is_batch and batch.items[0].output == tmp_path / "y.mkv"


def test_python_upscale_batch_equals_the_cli(env: dict[str, str], ffmpeg_bin: Path,
                                             ffprobe_bin: Path, clips: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`ffsr.upscale_batch([...], "espcn", "out/")` as the README gives it: one outcome per
    file, a broken file an outcome with its error (not an exception), and each output the
    frames `ffsr upscale` makes of that file."""
    import ffsr as api
    from ffsr.media import read_frames

    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    folder = tmp_path / "in"
    folder.mkdir()
    clip = folder / "carphone.mkv"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(clips / "carphone_176x144.mp4"),
                    "-frames:v", str(FRAMES), "-c:v", "ffv1", str(clip)], check=True)
    (folder / "broken.mkv").write_bytes(os.urandom(50_000))
    outcomes = api.upscale_batch([clip, folder / "broken.mkv"], "espcn", tmp_path / "out",
                                 encoder="ffv1")
    by_name = {o.item.input.name: o for o in outcomes}
    assert sorted(by_name) == ["broken.mkv", "carphone.mkv"]
    assert by_name["broken.mkv"].error is not None and not by_name["broken.mkv"].ok
    assert by_name["carphone.mkv"].ok, by_name["carphone.mkv"].error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["carphone.mkv"]
    cli = tmp_path / "cli.mkv"
    proc = ffsr(env, "upscale", str(clip), "-m", "espcn", "--encoder", "ffv1", "-o", str(cli))
    assert proc.returncode == 0, proc.stderr
    got = read_frames(ffmpeg_bin, tmp_path / "out" / "carphone.mkv", "rgb24", 352, 288)
    want = read_frames(ffmpeg_bin, cli, "rgb24", 352, 288)
    assert got.shape == want.shape == (FRAMES, 288, 352, 3) and (got == want).all()
