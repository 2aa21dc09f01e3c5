"""The streaming join (issue 13, overhead): the finished segments reach the join as one
Matroska stream through a FIFO, fed as each finishes, so the final encode runs beside the
workers. The stream must decode to exactly the segments' frames and timestamps; a segment
encoded differently is refused in one sentence; and the join really starts before the last
segment is done. Identity of whole jobs with the single-process run: test_segments*.py."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from test_inputs import espcn, espcn_cache, espcn_card  # noqa: F401  (ESPCN converted once, ONNX only)
from test_segments import OPEN_GOP, make

from ffsr.segments.join import Relay
from ffsr.segments.matroska import frame_times, scan, stream_header, write_clusters
from ffsr.segments.worker import INTERMEDIATE, segment_file


def segment(ffmpeg: Path, out: Path, first_ms: int, frames: int, size: str = "64x48") -> Path:
    """A segment as workers write it: the intermediate codec, absolute millisecond timestamps
    (VFR)."""
    make(ffmpeg, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", "-frames:v", str(frames),
         "-vf", f"settb=1/1000,setpts={first_ms}+N*40+7*mod(N\\,2)", *INTERMEDIATE,
         "-fps_mode", "passthrough", "-enc_time_base:v", "1:1000", "-f", "matroska", str(out))
    return out


def framemd5(ffmpeg: Path, path: Path) -> list[str]:
    out = subprocess.run([str(ffmpeg), "-v", "error", "-i", str(path), "-copyts", "-fps_mode",
                          "passthrough", "-enc_time_base:v", "demux", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True)
    return [ln.split(",", 1)[1] for ln in out.stdout.splitlines() if not ln.startswith("#")]


def test_stream_decodes_to_the_segments_one_after_another(ffmpeg_bin: Path,
                                                          tmp_path: Path) -> None:
    files = [segment(ffmpeg_bin, tmp_path / f"s{k}.mkv", first, n)
             for k, (first, n) in enumerate([(310, 7), (620, 9), (1001, 5)])]
    stream = tmp_path / "stream.mkv"
    scanned = [scan(f) for f in files]
    with open(stream, "wb") as out:
        out.write(stream_header(scanned[0]))
        for f, s in zip(files, scanned, strict=True):
            write_clusters(f, s, out)
    expected = [row for f in files for row in framemd5(ffmpeg_bin, f)]
    assert len(expected) == 21
    assert framemd5(ffmpeg_bin, stream) == expected  # pts, duration, size, md5 of every frame


def test_a_segment_encoded_differently_is_refused(ffmpeg_bin: Path, tmp_path: Path) -> None:
    segment(ffmpeg_bin, segment_file(tmp_path, 0), 0, 4)
    segment(ffmpeg_bin, segment_file(tmp_path, 1), 160, 4, size="32x24")
    relay = Relay(tmp_path, [0, 1])
    relay.ready(0)
    relay.ready(1)
    with open(relay.fifo, "rb") as reader:  # as the join would
        data = reader.read()
    relay.stop()
    assert data and relay.error == ("segment-0001.mkv was encoded differently from the first "
                                    "segment (another FFmpeg build or settings on that "
                                    "worker?); make it again with the same ffsr.")
    assert not relay.fifo.exists()


@pytest.mark.usefixtures("espcn")
def test_the_join_encodes_while_segments_still_run(ffmpeg_bin: Path, tmp_path: Path) -> None:
    """--jobs 2, 3 segments: the join reports frames before the last segment is done (with
    --jobs 1 the single-process run cuts the segments itself: segments.checkpoint)."""
    from ffsr.progress import ProgressUpdate
    from ffsr.segments.job import SegmentOptions, run_segmented
    from ffsr.upscale_job import UpscaleRequest, plan_upscale

    clip = tmp_path / "clip.mp4"  # 300 frames: each segment runs for seconds
    make(ffmpeg_bin, "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=12",
         *OPEN_GOP, str(clip))
    events: list[tuple[float, str, ProgressUpdate]] = []
    plan = plan_upscale(UpscaleRequest(clip, ["espcn"], output=tmp_path / "out.mp4"))
    out = run_segmented(plan, SegmentOptions(3, jobs=2),
                        lambda phase, u: events.append((time.monotonic(), phase, u)))
    assert out.result.frames == 300
    last_segment_done = max(t for t, phase, u in events if phase == "segments"
                            and u.frame == 300)
    assert any(phase == "join" and u.frame > 0 and t < last_segment_done
               for t, phase, u in events), [(phase, u.frame) for _, phase, u in events]


def test_frame_times_read_from_block_headers_equal_ffprobes(ffmpeg_bin: Path,
                                                            tmp_path: Path) -> None:
    """The done record counts a segment's frames from its block headers (no ffprobe, no
    decode): every frame's timestamp must be ffprobe's, over many clusters (80 s of VFR)."""
    path = segment(ffmpeg_bin, tmp_path / "long.mkv", 123_456, 2000, size="16x16")
    probe = subprocess.run([str(ffmpeg_bin.with_name("ffprobe")), "-v", "error",
                            "-select_streams", "v:0", "-show_entries", "packet=pts", "-of",
                            "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    expected = [int(v.strip(",")) for v in probe.stdout.split()]
    assert len(expected) == 2000 and len(scan(path).clusters) > 2
    assert frame_times(path) == expected


def test_splitter_cuts_a_stream_into_segments_even_inside_a_cluster(ffmpeg_bin: Path,
                                                                    tmp_path: Path) -> None:
    """segments.checkpoint: a live stream (ffmpeg's Matroska to a pipe) cut into segment files
    by frame count. Tiny frames share clusters, so the cuts fall inside them; each file must
    hold exactly its frames and timestamps, and its done record its file's sha256."""
    from ffsr.segments.checkpoint import Splitter
    from ffsr.segments.frames import Segment
    from ffsr.segments.worker import Done, read_done
    from ffsr.zoo import sha256_file

    source = segment(ffmpeg_bin, tmp_path / "whole.mkv", 1_000, 50, size="16x16")
    assert len(scan(source).clusters) < 50  # several frames per cluster
    stream = subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(source), "-c", "copy",
                             "-copyts", "-f", "matroska", "-"], capture_output=True,
                            check=True).stdout
    work = tmp_path / "work"
    work.mkdir()
    segs = [Segment(i, first, n, None, None, None)
            for i, (first, n) in enumerate([(0, 7), (7, 20), (27, 23)])]
    made: list[tuple[int, Done]] = []
    splitter = Splitter(work, segs, lambda d, i: made.append((i, d)))
    with open(splitter.fifo, "wb") as writer:  # as ffmpeg would
        writer.write(stream)
    splitter.finish()
    splitter.stop()
    assert [i for i, _ in made] == [0, 1, 2]
    times = frame_times(source)
    rows = framemd5(ffmpeg_bin, source)
    for seg in segs:
        path = segment_file(work, seg.index)
        assert frame_times(path) == times[seg.first:seg.first + seg.frames]
        assert framemd5(ffmpeg_bin, path) == rows[seg.first:seg.first + seg.frames]
        done, why = read_done(work, seg)
        assert done is not None and why is None and done.sha256 == sha256_file(path)
    assert sorted(p.name for p in work.iterdir() if not p.name.endswith(".done.json")) == [
        "segment-0000.mkv", "segment-0001.mkv", "segment-0002.mkv"]
