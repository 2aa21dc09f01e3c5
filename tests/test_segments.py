"""`ffsr upscale --segments N [--resume]` against the single-process run, with the real
ffmpeg: decoded frames and timestamps (framemd5) and audio packets must be identical, on a
clip with B-frames and open GOPs and on a variable-frame-rate clip; a driver killed with
SIGKILL resumes and redoes only the unfinished segments; a corrupted segment, a manifest
from another input, other options and the temporal filters segments cannot make exactly
each give one sentence; RIFE and --dedupe: test_segments_temporal.py; minterpolate and the
other whole-clip filters: test_segments_prepass.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_inputs import espcn, espcn_cache, espcn_card  # noqa: F401  (fixtures: ESPCN converted once, ONNX only)
from test_signals import processes_mentioning

from ffsr.segments.matroska import frame_times

pytest.importorskip("torch")

W, H = 128, 72
OPEN_GOP = ["-c:v", "libx264", "-preset", "veryfast", "-bf", "3",
            "-x264-params", "keyint=12:min-keyint=12:scenecut=0:open-gop=1"]


def make(ffmpeg: Path, *args: str) -> None:
    subprocess.run([str(ffmpeg), "-v", "error", "-y", *args], check=True, capture_output=True)


def ffsr(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", "upscale", *args], capture_output=True,
                          text=True, timeout=timeout)


def framemd5(ffmpeg: Path, path: Path) -> list[str]:
    """Every decoded frame's pts, duration, size and md5 (timestamps in the stream's own base)."""
    out = subprocess.run([str(ffmpeg), "-v", "error", "-i", str(path), "-map", "0:v:0",
                          "-copyts", "-fps_mode", "passthrough", "-enc_time_base:v", "demux",
                          "-f", "framemd5", "-"], capture_output=True, text=True, check=True)
    return [ln for ln in out.stdout.splitlines() if not ln.startswith("#software")]


def audio_md5(ffmpeg: Path, path: Path) -> str:
    out = subprocess.run([str(ffmpeg), "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy",
                          "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def one_sentence(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(f"error: {pattern}", lines[0]), proc.stderr


@pytest.fixture(autouse=True)
def lean_ffmpeg(request: pytest.FixtureRequest) -> None:
    """The test ESPCN for every test; ffsr then finds its default (lean onnx+openvino) build,
    as for a user: the model is ONNX only, and each segment's ffmpeg starts faster without
    LibTorch and TensorFlow."""
    request.getfixturevalue("espcn")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("segment-clips")
    gop = d / "gop.mp4"  # B-frames, open GOPs every 12 frames, AAC audio: 100 frames
    make(ffmpeg_bin, "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25:duration=4",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=4", *OPEN_GOP, "-c:a", "aac",
         "-shortest", str(gop))
    vfr = d / "vfr.mkv"  # uneven frame durations (ms-exact in Matroska), B-frames, open GOPs
    # settb first: in testsrc2's 1/25 time base setpts rounded every frame back onto the grid
    make(ffmpeg_bin, "-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25:duration=3",
         "-vf", "settb=1/1000,setpts=N*40+13*mod(N\\,3)", "-fps_mode", "passthrough",
         "-enc_time_base:v", "1:1000", *OPEN_GOP, str(vfr))
    late = d / "late.mkv"  # starts at 1.235 s (ffmpeg takes that off), 200 frames, AAC audio
    make(ffmpeg_bin, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=8",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=8", *OPEN_GOP, "-c:a", "aac",
         "-shortest", "-output_ts_offset", "1.2345", str(late))
    return {"gop": gop, "vfr": vfr, "late": late}


def single_and_segmented(clip: Path, out_dir: Path, suffix: str,
                         cut: tuple[str, ...] = ("--segments", "3")) -> tuple[Path, Path, float,
                                                                              float]:
    single, segmented = out_dir / f"single{suffix}", out_dir / f"segmented{suffix}"
    t0 = time.monotonic()
    proc = ffsr(str(clip), "-m", "espcn", "-o", str(single))
    t1 = time.monotonic()
    assert proc.returncode == 0, proc.stderr
    proc = ffsr(str(clip), "-m", "espcn", "-o", str(segmented), *cut)
    t2 = time.monotonic()
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 segments made" in proc.stderr, proc.stderr
    return single, segmented, t1 - t0, t2 - t1


# --jobs 1: the single-process run cuts the segments from a second output (segments.checkpoint);
# --jobs 2: workers make them and the join reads them back.
JOBS = pytest.mark.parametrize("jobs", ["1", "2"])


@JOBS
def test_segments_equal_single_process_open_gop(clips: dict[str, Path], ffmpeg_bin: Path,
                                                tmp_path: Path, jobs: str) -> None:
    single, segmented, t_single, t_seg = single_and_segmented(
        clips["gop"], tmp_path, ".mp4", ("--segments", "3", "--jobs", jobs))
    print(f"\nsingle process {t_single:.1f}s, --segments 3 {t_seg:.1f}s (100 frames, 128x72)")
    frames = framemd5(ffmpeg_bin, single)
    assert len([ln for ln in frames if not ln.startswith("#")]) == 100
    assert framemd5(ffmpeg_bin, segmented) == frames
    assert audio_md5(ffmpeg_bin, segmented) == audio_md5(ffmpeg_bin, single) \
        == audio_md5(ffmpeg_bin, clips["gop"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], \
        "the work folder stays after a successful join"


@JOBS
def test_segments_equal_single_process_vfr(clips: dict[str, Path], ffmpeg_bin: Path,
                                           tmp_path: Path, jobs: str) -> None:
    single, segmented, _, _ = single_and_segmented(clips["vfr"], tmp_path, ".mkv",
                                                   ("--segments", "3", "--jobs", jobs))
    frames = framemd5(ffmpeg_bin, single)
    assert len([ln for ln in frames if not ln.startswith("#")]) == 75
    assert framemd5(ffmpeg_bin, segmented) == frames


def test_segment_length_cuts_by_duration(clips: dict[str, Path], ffmpeg_bin: Path,
                                         tmp_path: Path) -> None:
    """--segment-length 1.5 on a 3 s clip: 3 segments (the check in single_and_segmented),
    the single-process frames; with --segments too, 0 s, or --segments 0: one sentence."""
    single, segmented, _, _ = single_and_segmented(clips["vfr"], tmp_path, ".mkv",
                                                   ("--segment-length", "1.5"))
    assert framemd5(ffmpeg_bin, segmented) == framemd5(ffmpeg_bin, single)
    out = str(tmp_path / "o.mkv")
    one_sentence(ffsr(str(clips["vfr"]), "-m", "espcn", "-o", out, "--segments", "2",
                      "--segment-length", "1"),
                 r"Pass --segments N or --segment-length SECONDS, not both\.")
    one_sentence(ffsr(str(clips["vfr"]), "-m", "espcn", "-o", out, "--segment-length", "0"),
                 r"--segment-length must be more than 0 seconds\.")
    # --segments 0 once ran the single process without a word
    one_sentence(ffsr(str(clips["vfr"]), "-m", "espcn", "-o", out, "--segments", "0"),
                 r"--segments must be at least 1\.")
    assert not Path(out).exists()


def done_records(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("segment-*.done.json")}


def kill_after_first_segment(args: list[str], out: Path) -> set[str]:
    """`ffsr upscale ARGS -o OUT --segments 3` SIGKILLed once a segment is done: the done
    records left (no ffmpeg outlives the driver, no half-written segment looks made)."""
    folder = out.parent / f".{out.name}.ffsr-segments"
    driver = subprocess.Popen([sys.executable, "-m", "ffsr", "upscale", *args, "-o", str(out),
                               "--segments", "3"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not done_records(folder) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.kill()
    driver.communicate()
    assert not out.exists(), "the driver finished before it could be killed"
    deadline = time.monotonic() + 10
    while processes_mentioning(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(folder)) == [], "an ffmpeg outlived the killed driver"
    finished = done_records(folder)
    assert 1 <= len(finished) < 3
    # SIGKILL leaves the segment in progress under its partial name, which nothing takes as made
    assert all(p.name.endswith(".partial.mkv") for p in folder.glob(".segment-*"))
    return finished


def assert_cut_as_a_worker_makes(ffmpeg_bin: Path, args: list[str], folder: Path,
                                 finished: set[str], first_ms: int) -> None:
    """What a one-worker run cut (segments.checkpoint) equals what `ffsr segments work` makes
    of the same index: block timestamps (absolute, from ``first_ms`` on) and frames."""
    planned = folder.parent / f"by-worker{Path(folder.name.removesuffix('.ffsr-segments')).suffix}"
    assert ffsr(*args, "-o", str(planned), "--segments", "3", "--executor", "none",
                "--overwrite").returncode == 0
    by_worker = folder.parent / f".{planned.name}.ffsr-segments"
    for name in sorted(finished):
        index = int(name.split("-")[1].split(".")[0])
        work = subprocess.run([sys.executable, "-m", "ffsr", "segments", "work", str(by_worker),
                               "--index", str(index)], capture_output=True, text=True)
        assert work.returncode == 0, work.stderr
        cut, made = folder / f"segment-{index:04d}.mkv", by_worker / f"segment-{index:04d}.mkv"
        assert frame_times(cut) == frame_times(made) and frame_times(cut)[0] >= first_ms
        assert framemd5(ffmpeg_bin, cut) == framemd5(ffmpeg_bin, made)


def test_kill_then_resume_redoes_only_unfinished(clips: dict[str, Path], ffmpeg_bin: Path,
                                                 tmp_path: Path) -> None:
    """One worker (the default): the run cuts its segments from its own output
    (segments.checkpoint); those kept after the kill are what a worker makes of the same
    index (`ffsr segments work`), and --resume's workers and join finish the job."""
    clip, out = clips["late"], tmp_path / "out.mp4"
    folder = tmp_path / ".out.mp4.ffsr-segments"
    finished = kill_after_first_segment([str(clip), "-m", "espcn"], out)
    # the clip starts at 1.235 s
    assert_cut_as_a_worker_makes(ffmpeg_bin, [str(clip), "-m", "espcn"], folder, finished, 1235)

    # Refusals leave the work alone: another input, other options, no --resume.
    other = tmp_path / "other.mkv"
    make(ffmpeg_bin, "-i", str(clip), "-t", "3", "-c", "copy", str(other))
    one_sentence(ffsr(str(other), "-m", "espcn", "-o", str(out), "--segments", "3", "--resume"),
                 r"The segments in .* were made from another input than .*other\.mkv \(size or "
                 r"content differ\); pass --overwrite instead of --resume to start over\.")
    one_sentence(ffsr(str(clip), "-m", "espcn", "-o", str(out), "--segments", "3", "--resume",
                      "--crf", "30"),
                 r"The segments in .* were made with other options \(filter graph, encoder or "
                 r"--segments\); pass --overwrite instead of --resume to start over\.")
    one_sentence(ffsr(str(clip), "-m", "espcn", "-o", str(out), "--segments", "3"),
                 rf".*\.out\.mp4\.ffsr-segments holds {len(finished)} finished segments of an "
                 r"interrupted run; pass --resume to keep them or --overwrite to start over\.")
    assert done_records(folder) == finished

    # A corrupted kept segment is noticed (one sentence) and made again.
    corrupt = folder / "segment-0000.mkv"
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    proc = ffsr(str(clip), "-m", "espcn", "-o", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "note: segment 0's file does not match its done record (corrupted?); it is made " \
           "again." in proc.stderr
    made = 3 - len(finished) + 1
    assert f"{made} of 3 segments made" in proc.stderr, proc.stderr
    assert not folder.exists()

    single = tmp_path / "single.mp4"
    assert ffsr(str(clip), "-m", "espcn", "-o", str(single)).returncode == 0
    assert framemd5(ffmpeg_bin, out) == framemd5(ffmpeg_bin, single)
    assert audio_md5(ffmpeg_bin, out) == audio_md5(ffmpeg_bin, single)


@pytest.mark.parametrize(("options", "suffix"), [
    ([], ".mkv"), (["--fps", "50", "--interpolate-after"], ".mkv"), ([], ".gif")],
    ids=["per-frame", "minterpolate", "gif"])
def test_one_worker_cuts_what_a_worker_makes_and_resume_mixes_them(
        clips: dict[str, Path], ffmpeg_bin: Path, tmp_path: Path, options: list[str],
        suffix: str) -> None:
    """The one-worker run's cut segments (segments.checkpoint) equal what `ffsr segments work`
    makes of the same index, and --resume's join takes both kinds in one stream (a file
    cut from a stream lacks the space ffmpeg keeps in a seekable file's track header: the
    join refused the mix until matroska.tracks_signature ignored it). Where the join would
    run the graph's tail (--interpolate-after's minterpolate, a .gif's palette:
    segments.after), the tap stands before that tail, in the workers' ticks."""
    clip = clips["late"]
    args = [str(clip), "-m", "espcn", *options]
    out = tmp_path / f"out{suffix}"
    finished = kill_after_first_segment(args, out)
    folder = tmp_path / f".{out.name}.ffsr-segments"
    # the clip starts at 1.235 s: in ticks of its 1/1000 time base, the same count
    assert_cut_as_a_worker_makes(ffmpeg_bin, args, folder, finished, 1235)
    proc = ffsr(*args, "-o", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert f"{3 - len(finished)} of 3 segments made, {len(finished)} kept" in proc.stderr, \
        proc.stderr
    single = tmp_path / f"single{suffix}"
    assert ffsr(*args, "-o", str(single)).returncode == 0
    assert framemd5(ffmpeg_bin, out) == framemd5(ffmpeg_bin, single)


@pytest.mark.parametrize(("extra", "output", "sentence"), [
    (["--fps", "30", "--interpolation", "rife"], "o.mp4", r"--segments with --interpolation rife "
     r"is proven for doubling the input's frame rate only \(the cuts follow that graph's "
     r"odd/even output slots\); run without --segments\."),
    (["--fps", "50"], "o.gif", r"--segments makes a \.gif only where the join runs its palette "
     r"\(one for the whole clip\) after every other filter: with --fps, only with "
     r"--interpolate-after \(not RIFE\); run without --segments\.")])
def test_temporal_filters_are_refused(clips: dict[str, Path], tmp_path: Path, extra: list[str],
                                      output: str, sentence: str) -> None:
    """What segments cannot make exactly (RIFE and --dedupe can: test_segments_temporal.py;
    minterpolate, framerate, --deinterlace through the pre-pass, and after the model in the
    join, a .gif's palette in the join: test_segments_prepass.py)."""
    proc = ffsr(str(clips["gop"]), "-m", "espcn", "-o", str(tmp_path / output), "--segments",
                "3", *extra)
    # RIFE is converted on its first use in a session, and ffsr says so before refusing.
    proc.stderr = re.sub(r"^converting rife-\S+ \(first use\)…\n\n?", "", proc.stderr)
    one_sentence(proc, sentence)
    assert list(tmp_path.iterdir()) == []


def test_rgb_model_segments_equal_single_process(clips: dict[str, Path], ffmpeg_bin: Path,
                                                 tmp_path: Path) -> None:
    """An RGB model (realesr-animevideov3, x4): each worker converts its frames to the
    output's yuv420p where the single process converts them (the graph's end), so the
    intermediates hold yuv420p, half of rgb24's bytes and CPU, and the output is the single
    process's frame for frame. Made through the index contract (--executor none, then one
    `ffsr segments work` per index, then --resume joins)."""
    clip, single, out = clips["gop"], tmp_path / "single.mp4", tmp_path / "out.mp4"
    model = ["-m", "realesr-animevideov3"]
    proc = ffsr(str(clip), *model, "-o", str(single))
    assert proc.returncode == 0, proc.stderr
    proc = ffsr(str(clip), *model, "-o", str(out), "--segments", "3", "--executor", "none")
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / ".out.mp4.ffsr-segments"
    assert json.loads((folder / "manifest.json").read_text())["worker"]["pix_fmt"] == "yuv420p"
    for index in range(3):
        work = subprocess.run([sys.executable, "-m", "ffsr", "segments", "work", str(folder),
                               "--index", str(index)], capture_output=True, text=True)
        assert work.returncode == 0, work.stderr
    stored = subprocess.run([str(ffmpeg_bin.with_name("ffprobe")), "-v", "error", "-show_entries",
                             "stream=codec_name,pix_fmt", "-of", "csv=p=0",
                             str(folder / "segment-0001.mkv")], capture_output=True, text=True)
    assert stored.stdout.strip() == "ffvhuff,yuv420p", stored
    proc = ffsr(str(clip), *model, "-o", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "0 of 3 segments made, 3 kept" in proc.stderr, proc.stderr
    assert framemd5(ffmpeg_bin, out) == framemd5(ffmpeg_bin, single)
    assert audio_md5(ffmpeg_bin, out) == audio_md5(ffmpeg_bin, single)


def test_resume_without_a_run_is_one_sentence(clips: dict[str, Path], tmp_path: Path) -> None:
    one_sentence(ffsr(str(clips["gop"]), "-m", "espcn", "-o", str(tmp_path / "o.mp4"),
                      "--segments", "3", "--resume"),
                 r"Nothing to resume: .* holds no readable manifest; run without --resume\.")


@JOBS
def test_signal_stops_every_worker(clips: dict[str, Path], tmp_path: Path, jobs: str) -> None:
    """SIGTERM while segments run: every worker's ffmpeg stops (with one worker: the run that
    cuts them), finished segments stay, no half-written one."""
    out = tmp_path / "out.mp4"
    folder = tmp_path / ".out.mp4.ffsr-segments"
    driver = subprocess.Popen([sys.executable, "-m", "ffsr", "upscale", str(clips["late"]), "-m",
                               "espcn", "-o", str(out), "--segments", "3", "--jobs", jobs],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    while not processes_mentioning(str(folder)) and driver.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(driver.pid, signal.SIGTERM)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == "stopped (SIGTERM)"
    assert processes_mentioning(str(folder)) == []
    assert not out.exists()
    assert (folder / "manifest.json").is_file()
    assert not list(folder.glob(".segment-*")) and not list(folder.glob("*stream*"))


def test_progress_shows_each_running_workers_fps(clips: dict[str, Path], tmp_path: Path) -> None:
    """The segments bar's fps is the running workers' sum, and each is shown while several
    run (a slow node or GPU stands out)."""
    from ffsr.cli_segments import per_worker
    from ffsr.progress import ProgressUpdate
    from ffsr.segments.job import SegmentOptions, run_segmented
    from ffsr.upscale_job import UpscaleRequest, plan_upscale

    assert per_worker((12.14, 3.4)) == "(12.1 + 3.4)" and per_worker((5.0,)) == ""
    updates: list[ProgressUpdate] = []
    plan = plan_upscale(UpscaleRequest(clips["gop"], ["espcn"], output=tmp_path / "o.mp4"))
    run_segmented(plan, SegmentOptions(3, jobs=2), lambda phase, u: updates.append(u)
                  if phase == "segments" else None)
    assert updates and updates[-1].frame == 100
    assert all(abs(u.fps - sum(u.worker_fps)) < 1e-9 and len(u.worker_fps) <= 2 for u in updates)
