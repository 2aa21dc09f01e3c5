"""`--segments` with the whole-clip pre-pass (issue 13 part 2): `--fps` through minterpolate
(the default interpolator), framerate and fps, `--deinterlace`, and `--dedupe` with `--fps`,
against the single-process run with the real CLI, ESPCN and ffsr's ffmpeg. Decoded frames,
timestamps (framemd5) and audio must be identical, on clips with B-frames and open GOPs, a
video that starts after its audio, a VFR clip and a 24000/1001 clip.

minterpolate cannot be cut with bounded context (its motion search starts from the previous
frames' vectors), so the part of the graph before the model runs once over the clip and the
segments cut its lossless output. The NTSC case guards the join: with ms timestamps
ffmpeg guessed the rate 19001/317 and moved two frames by 1 ms until the join was told
the --fps rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_inputs import espcn, espcn_cache, espcn_card  # noqa: F401  (ESPCN converted once, ONNX only)
from test_segments import OPEN_GOP, audio_md5, ffsr, framemd5, make, one_sentence

SHORT_GOP = [a.replace("keyint=12:min-keyint=12", "keyint=8:min-keyint=8") for a in OPEN_GOP]
TINY = "size=64x48"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("prepass-clips")
    late = d / "late.mkv"  # B-frames, open GOPs, AAC; the video starts 310 ms in
    make(ffmpeg_bin, "-f", "lavfi", "-i", f"testsrc2={TINY}:rate=25:duration=2", "-f", "lavfi",
         "-i", "sine=frequency=440:duration=2", *SHORT_GOP, "-c:a", "aac", "-shortest",
         "-output_ts_offset", "0.31", str(late))
    vfr = d / "vfr.mkv"  # frames 0, 53, 106, 120, 173 … ms
    make(ffmpeg_bin, "-f", "lavfi", "-i", f"testsrc2={TINY}:rate=25:duration=1.6", "-vf",
         "settb=1/1000,setpts=N*40+13*mod(N\\,3)", "-fps_mode", "passthrough",
         "-enc_time_base:v", "1:1000", *SHORT_GOP, str(vfr))
    ntsc = d / "ntsc.mp4"
    make(ffmpeg_bin, "-f", "lavfi", "-i", f"testsrc2={TINY}:rate=24000/1001:duration=2",
         *SHORT_GOP, str(ntsc))
    held = d / "held.mp4"  # 10 fps drawings shown at 25 fps, AAC
    make(ffmpeg_bin, "-f", "lavfi", "-i", f"testsrc2={TINY}:rate=10:duration=2.4", "-f", "lavfi",
         "-i", "sine=frequency=440:duration=2.4", "-vf", "fps=25", *SHORT_GOP, "-c:a", "aac",
         "-shortest", str(held))
    return {"late": late, "vfr": vfr, "ntsc": ntsc, "held": held}


@pytest.mark.usefixtures("espcn")
@pytest.mark.parametrize(("clip", "options"), [
    ("late", ["--fps", "50"]),
    ("vfr", ["--fps", "30"]),
    ("ntsc", ["--fps", "60000/1001", "--interpolation", "framerate"]),
    ("ntsc", ["--fps", "60"]),
    ("held", ["--dedupe", "--fps", "30"]),
    ("late", ["--deinterlace"]),
    # --interpolation rife without --fps interpolates nothing: bwdif still needs the pre-pass
    ("late", ["--deinterlace", "--interpolation", "rife"]),
    ("late", ["--fps", "30", "--interpolation", "fps"]),
], ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_prepass_segments_equal_single_process(clips: dict[str, Path], ffmpeg_bin: Path,
                                               tmp_path: Path, clip: str,
                                               options: list[str]) -> None:
    src = clips[clip]
    single, segmented = tmp_path / "single.mkv", tmp_path / "segmented.mkv"
    proc = ffsr(str(src), "-m", "espcn", *options, "-o", str(single))
    assert proc.returncode == 0, proc.stderr
    proc = ffsr(str(src), "-m", "espcn", *options, "-o", str(segmented), "--segments", "3")
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 segments made" in proc.stderr and "pre-pass" in proc.stderr, proc.stderr
    frames = framemd5(ffmpeg_bin, single)
    assert len([ln for ln in frames if not ln.startswith("#")]) > 10
    assert framemd5(ffmpeg_bin, segmented) == frames
    if clip in ("late", "held"):
        assert audio_md5(ffmpeg_bin, segmented) == audio_md5(ffmpeg_bin, single) \
            == audio_md5(ffmpeg_bin, src)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.usefixtures("espcn")
@pytest.mark.parametrize(("clip", "options"), [
    ("ntsc", ["--fps", "60000/1001"]),
    ("vfr", ["--fps", "30"]),
    ("late", ["--fps", "50", "--interpolation", "framerate"]),
    ("late", ["--fps", "30", "--interpolation", "fps"]),
    ("held", ["--dedupe", "--fps", "30"]),
    ("ntsc", ["--fps", "60000/1001", "--deinterlace"]),
    ("held", ["--dedupe", "--fps", "30", "--interpolation", "framerate", "--deinterlace"]),
], ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_interpolation_after_the_model_runs_in_the_join(clips: dict[str, Path],
                                                        ffmpeg_bin: Path, tmp_path: Path,
                                                        clip: str, options: list[str]) -> None:
    """--interpolate-after: the workers upscale and write each frame's pts in input ticks,
    the join interpolates on those exact timestamps (segments.after). With --deinterlace the
    pre-pass (bwdif, and mpdecimate with --dedupe) writes its graph's ticks, which the workers
    pass through. With millisecond timestamps every frame of the NTSC case differed, and
    with the pre-pass writing milliseconds the deinterlaced NTSC case differed too."""
    src = clips[clip]
    single, segmented = tmp_path / "single.mkv", tmp_path / "segmented.mkv"
    args = [str(src), "-m", "espcn", *options, "--interpolate-after"]
    proc = ffsr(*args, "-o", str(single))
    assert proc.returncode == 0, proc.stderr
    proc = ffsr(*args, "-o", str(segmented), "--segments", "3")
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 segments made" in proc.stderr, proc.stderr
    assert ("pre-pass" in proc.stderr) == ("--deinterlace" in options), proc.stderr
    frames = framemd5(ffmpeg_bin, single)
    assert len([ln for ln in frames if not ln.startswith("#")]) > 10
    assert framemd5(ffmpeg_bin, segmented) == frames
    if clip in ("late", "held"):
        assert audio_md5(ffmpeg_bin, segmented) == audio_md5(ffmpeg_bin, src)


@pytest.mark.usefixtures("espcn")
@pytest.mark.parametrize(("clip", "options"), [
    ("vfr", []),
    ("held", ["--dedupe"]),
    ("late", ["--deinterlace"]),
    ("ntsc", ["--fps", "60", "--interpolate-after"]),
], ids=lambda v: v if isinstance(v, str) else " ".join(v) or "plain")
def test_gif_palette_runs_in_the_join(clips: dict[str, Path], ffmpeg_bin: Path,
                                      tmp_path: Path, clip: str, options: list[str]) -> None:
    """A .gif has one palette for the whole clip (palettegen sees every frame before
    paletteuse draws the first): the workers upscale and the join runs the palette, after
    the interpolator where --interpolate-after puts that there too (segments.after). Per
    segment, each would get a palette of its own."""
    src = clips[clip]
    single, segmented = tmp_path / "single.gif", tmp_path / "segmented.gif"
    args = [str(src), "-m", "espcn", *options]
    proc = ffsr(*args, "-o", str(single))
    assert proc.returncode == 0, proc.stderr
    proc = ffsr(*args, "-o", str(segmented), "--segments", "3")
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 segments made" in proc.stderr, proc.stderr
    frames = framemd5(ffmpeg_bin, single)
    assert len([ln for ln in frames if not ln.startswith("#")]) > 10
    assert framemd5(ffmpeg_bin, segmented) == frames
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.usefixtures("espcn")
def test_resume_keeps_the_prepass_and_redoes_a_damaged_one(clips: dict[str, Path],
                                                           ffmpeg_bin: Path,
                                                           tmp_path: Path) -> None:
    """Planned with --executor none (the pre-pass runs in the driver), then joined with
    --resume: the pre-pass is kept; damaged, it is made again and the result is the same."""
    src, out = clips["late"], tmp_path / "out.mkv"
    folder = tmp_path / ".out.mkv.ffsr-segments"
    base = [str(src), "-m", "espcn", "--fps", "50", "-o", str(out), "--segments", "3"]
    proc = ffsr(*base, "--executor", "none")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((folder / "prepass.done.json").read_text())
    assert record["sha256"] and (folder / "prepass.mkv").stat().st_size == record["size"]
    proc = ffsr(*base, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "pre-pass" not in proc.stderr, proc.stderr  # kept, not made again
    first = framemd5(ffmpeg_bin, out)

    assert ffsr(*base, "--executor", "none", "--overwrite").returncode == 0
    damaged = folder / "prepass.mkv"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    proc = ffsr(*base, "--resume", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert "pre-pass" in proc.stderr, proc.stderr  # made again
    assert framemd5(ffmpeg_bin, out) == first


@pytest.mark.usefixtures("espcn")
@pytest.mark.parametrize(("extra", "sentence"), [
    (["-m", "none", "--fps", "50"], r"--segments splits the model's work, and -m none runs no "
     r"model; run without --segments\."),
])
def test_what_the_prepass_cannot_do_is_one_sentence(clips: dict[str, Path], tmp_path: Path,
                                                     extra: list[str], sentence: str) -> None:
    models = [] if "-m" in extra else ["-m", "espcn"]
    one_sentence(ffsr(str(clips["late"]), *models, *extra, "-o", str(tmp_path / "o.mkv"),
                      "--segments", "3"), sentence)
    assert list(tmp_path.iterdir()) == []
