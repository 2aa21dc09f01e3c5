"""`--segments` with a temporal graph (issue 13 part 2): `--fps` through RIFE and `--dedupe`,
cut into 3 segments, against the single-process run with the real CLI, the real RIFE checkpoint
(converted on first use) and ffsr's ffmpeg. Each worker reads context frames on both sides
and keeps its own output slots; decoded frames and timestamps (framemd5) and audio must be
identical. Clips are tiny (64x48, 40 frames): RIFE on a 2-core CPU is slow.

The VFR clip is the sensitive one: its frames land on odd and even output slots, and a
worker that started on a slot of the other parity than the single-process run's first
frame swapped originals and middle frames (49 of 80 frames differed, measured with the
parity step taken out); without context frames the frames at the cuts differed."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
from test_inputs import espcn, espcn_cache, espcn_card  # noqa: F401  (ESPCN converted once, ONNX only)
from test_rife_alone import PAN, H, W, pan_clip
from test_segments import OPEN_GOP, audio_md5, ffsr, framemd5, make, one_sentence

from ffsr.segments.temporal import refusal

SHORT_GOP = [a.replace("keyint=12:min-keyint=12", "keyint=8:min-keyint=8") for a in OPEN_GOP]
SOURCE = "testsrc2=size=64x48:rate=25:duration=1.6"


@pytest.fixture(scope="module")
def temporal_clips(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("temporal-clips")
    late = d / "late.mkv"  # B-frames, open GOPs every 8 frames, AAC; video starts 23 ms late
    make(ffmpeg_bin, "-f", "lavfi", "-i", SOURCE, "-f", "lavfi", "-i",
         "sine=frequency=440:duration=1.6", *SHORT_GOP, "-c:a", "aac", "-shortest",
         "-output_ts_offset", "0.31", str(late))
    vfr = d / "vfr.mkv"  # frames 0, 53, 106, 120, 173 … ms: really variable (ms time base)
    make(ffmpeg_bin, "-f", "lavfi", "-i", SOURCE, "-vf", "settb=1/1000,setpts=N*40+13*mod(N\\,3)",
         "-fps_mode", "passthrough", "-enc_time_base:v", "1:1000", *SHORT_GOP, str(vfr))
    held = d / "held.mp4"  # 10 fps drawings shown at 25 fps (held 2 or 3 frames), AAC
    make(ffmpeg_bin, "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=2.4", "-f", "lavfi",
         "-i", "sine=frequency=440:duration=2.4", "-vf", "fps=25", *SHORT_GOP, "-c:a", "aac",
         "-shortest", str(held))
    return {"late": late, "vfr": vfr, "held": held}


@pytest.fixture(scope="module")
def twos(ffmpeg_bin: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Anime "on twos": 24 lossless frames at 24 fps, 12 drawings held 2 frames each."""
    return pan_clip(ffmpeg_bin, shared_data, tmp_path_factory.mktemp("twos") / "twos.mkv",
                    "floor(n/2)", 24)


@pytest.mark.parametrize(("clip", "extra"), [("late", []), ("vfr", []),
                                             ("late", ["--deinterlace"])])
def test_rife_segments_equal_single_process(temporal_clips: dict[str, Path], ffmpeg_bin: Path,
                                            tmp_path: Path, clip: str, extra: list[str]) -> None:
    """With --deinterlace, bwdif makes each frame from its input neighbours: the context frames
    cover them too (with 1 context frame the frames at the cuts differed)."""
    src = temporal_clips[clip]
    rife = ["-m", "none", "--fps", "50", "--interpolation", "rife", *extra]
    single, segmented = tmp_path / "single.mkv", tmp_path / "segmented.mkv"
    proc = ffsr(str(src), *rife, "-o", str(single))
    assert proc.returncode == 0, proc.stderr
    proc = ffsr(str(src), *rife, "-o", str(segmented), "--segments", "3")
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 segments made" in proc.stderr, proc.stderr
    frames = framemd5(ffmpeg_bin, single)
    assert len([ln for ln in frames if not ln.startswith("#")]) >= 79  # 2x of 40 frames
    assert framemd5(ffmpeg_bin, segmented) == frames
    if clip == "late":
        assert audio_md5(ffmpeg_bin, segmented) == audio_md5(ffmpeg_bin, single) \
            == audio_md5(ffmpeg_bin, src)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.usefixtures("espcn")
def test_dedupe_segments_equal_single_process(temporal_clips: dict[str, Path], ffmpeg_bin: Path,
                                              tmp_path: Path) -> None:
    """mpdecimate decided once by the driver: the cuts fall inside held drawings, where a
    worker's own mpdecimate would keep its first frame and count N from 0."""
    src = temporal_clips["held"]
    single, segmented = tmp_path / "single.mkv", tmp_path / "segmented.mkv"
    proc = ffsr(str(src), "-m", "espcn", "--dedupe", "-o", str(single))
    assert proc.returncode == 0, proc.stderr
    proc = ffsr(str(src), "-m", "espcn", "--dedupe", "-o", str(segmented), "--segments", "3")
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 segments made" in proc.stderr, proc.stderr
    frames = framemd5(ffmpeg_bin, single)
    assert 0 < len([ln for ln in frames if not ln.startswith("#")]) < 60  # duplicates went
    assert framemd5(ffmpeg_bin, segmented) == frames
    assert audio_md5(ffmpeg_bin, segmented) == audio_md5(ffmpeg_bin, single) \
        == audio_md5(ffmpeg_bin, src)


@pytest.fixture(scope="module")
def stripes(ffmpeg_bin: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held drawings that survive bwdif, which still changes them: one row of baboon
    stretched over the frame (flat columns: bwdif's new lines nearly equal the old ones),
    moving PAN px per drawing and held 2 frames, under a still 6 % veil of one baboon column
    stretched sideways (lines that differ, so bwdif changes 47 of the 48 frames, by too little
    for mpdecimate: 24 kept, with bwdif or without). Lossless H.264, B-frames, open GOPs of 12
    (a worker's seek lands a GOP early), 24 fps, a 2 s tone."""
    out = tmp_path_factory.mktemp("stripes") / "stripes.mkv"
    make(ffmpeg_bin, "-loop", "1", "-framerate", "24", "-i",
         str(shared_data / "images/Set14/baboon.png"), "-f", "lavfi", "-i", "sine=f=440:d=2",
         "-f", "lavfi", "-i", f"color=c=0x101010:s={W}x{H}:r=24", "-filter_complex",
         f"[0:v]split[a][b];[a]crop={W}:1:x='60+{PAN}*floor(n/2)':y=40,"
         f"scale={W}:{H}:flags=neighbor,format=yuv444p[stripes];"
         f"[b]crop=1:{H}:x=300:y=100,scale={W}:{H}:flags=neighbor,format=gray,format=yuv444p[v];"
         "[2:v]format=gray[alpha];[v][alpha]alphamerge[veil];"
         "[stripes][veil]overlay=shortest=1:format=yuv444,trim=end_frame=48[out]",
         "-map", "[out]", "-map", "1:a", "-shortest", *OPEN_GOP, "-qp", "0", "-c:a", "flac",
         str(out))
    return out


@pytest.mark.parametrize(("clip", "extra"), [("twos", []), ("stripes", ["--deinterlace"])])
def test_dedupe_before_rife_segments_equal_single_process(
        clip: str, extra: list[str], ffmpeg_bin: Path, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    """--dedupe then RIFE: the drawings are decided once for the whole clip, and each worker
    reads 2 drawings of context past its cuts (segments.dedupe). With --deinterlace they are
    decided and selected after bwdif, where the single process's mpdecimate runs: selecting
    them before bwdif, or by the input's pts after it, gave other frames (run here)."""
    src: Path = request.getfixturevalue(clip)
    args = [str(src), "-m", "none", "--dedupe", "--fps", "24", "--interpolation", "rife", *extra]
    single, segmented = tmp_path / "single.mkv", tmp_path / "segmented.mkv"
    proc = ffsr(*args, "-o", str(single))
    assert proc.returncode == 0, proc.stderr
    cuts = "2" if clip == "twos" else "3"  # 1 s: one cut; 2 s: two, one inside a GOP
    proc = ffsr(*args, "-o", str(segmented), "--segments", cuts)
    assert proc.returncode == 0, proc.stderr
    assert f"{cuts} of {cuts} segments made" in proc.stderr, proc.stderr
    frames = framemd5(ffmpeg_bin, single)
    drawings = 12 if clip == "twos" else 24
    assert len([ln for ln in frames if not ln.startswith("#")]) >= 2 * drawings - 1  # doubled
    assert framemd5(ffmpeg_bin, segmented) == frames
    assert audio_md5(ffmpeg_bin, segmented) == audio_md5(ffmpeg_bin, src)


def test_deinterlace_with_dedupe_before_rife_is_one_sentence(twos: Path, tmp_path: Path) -> None:
    """Where bwdif makes the held frames differ (anime on twos), the single-process check
    refuses under --segments too, before any work (interpolation.dedupe)."""
    proc = ffsr(str(twos), "-m", "none", "--deinterlace", "--dedupe", "--fps", "24",
                "--interpolation", "rife", "-o", str(tmp_path / "o.mkv"), "--segments", "2")
    # RIFE is converted on its first use in a session, and ffsr says so before refusing.
    proc.stderr = re.sub(r"^converting rife-\S+ \(first use\)…\n\n?", "", proc.stderr)
    one_sentence(proc,
                 r"--dedupe found no held frames after --deinterlace \(bwdif makes held frames "
                 r"differ from each other\): drop --dedupe or --deinterlace\.")
    assert list(tmp_path.iterdir()) == []


def test_only_rifes_doubling_is_segmented() -> None:
    """The cuts follow the 2x graph's odd/even slots; any other RIFE ratio (a v4 graph with
    another period) is refused until it is proven, as is an input without a known rate."""
    assert refusal(Fraction(50), "rife", False, Fraction(25)) is None
    assert refusal(None, "minterpolate", False, Fraction(25)) is None
    for fps, rate in ((Fraction(60), Fraction(25)), (Fraction(50), None)):
        why = refusal(fps, "rife", False, rate)
        assert why is not None and why.startswith("--segments with --interpolation rife is "
                                                  "proven for doubling")
