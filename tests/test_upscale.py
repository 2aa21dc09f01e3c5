"""ffsr upscale end to end: real ffmpeg, real clips, pixels, sizes, frame counts, audio,
and a clean failure for every bad input."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import no_ffsr_build_env

from ffsr.media import count_frames, probe, read_frames, read_yuv420p_y
from ffsr.model_card import ModelCard
from ffsr.quality import psnr

pytest.importorskip("torch")


def ffsr(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def run(ffmpeg: Path, *args: str) -> None:
    subprocess.run([str(ffmpeg), "-v", "error", "-y", *args], check=True, capture_output=True)


def audio_md5(ffmpeg: Path, path: Path) -> str:
    out = subprocess.run([str(ffmpeg), "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy",
                          "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_readme_command_on_y4m(zoo_models: dict[str, ModelCard], ffmpeg_bin: Path,
                               ffprobe_bin: Path, clips: Path, tmp_path: Path) -> None:
    """`ffsr upscale in.y4m --model espcn`, exactly as written."""
    run(ffmpeg_bin, "-i", str(clips / "carphone_176x144.mp4"), "-frames:v", "30",
        str(tmp_path / "in.y4m"))
    proc = ffsr("upscale", "in.y4m", "--model", "espcn", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "in_x2.mp4"
    info = probe(ffprobe_bin, out)
    assert (info.width, info.height, info.codec) == (352, 288, "h264")
    assert count_frames(ffprobe_bin, out) == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.y4m", "in_x2.mp4"]


CASES = [
    # clip, model, output suffix, frames limit, expected scale
    ("realshort_320x240.mp4", "espcn", ".mp4", None, 2),
    ("realshort_320x240.mp4", "small-grayrealesrx2", ".mkv", None, 2),
    ("carphone_176x144.mp4", "srcnn", ".mp4", None, 2),
    ("carphone_176x144.mp4", "realesr-animevideox2v3", ".mp4", 24, 2),
    ("newtonscradle_200x150.gif", "realesr-animevideov3", ".gif", None, 4),
    ("car-detection_768x432.mp4", "espcn", ".mp4", 40, 2),
]


@pytest.mark.parametrize(("clip", "model", "suffix", "frames", "scale"), CASES,
                         ids=[f"{c[1]}-{c[0].split('_')[0]}" for c in CASES])
def test_zoo_model_upscales_clip(zoo_models: dict[str, ModelCard], ffmpeg_bin: Path,
                                 ffprobe_bin: Path, clips: Path, tmp_path: Path, clip: str,
                                 model: str, suffix: str, frames: int | None, scale: int) -> None:
    src = clips / clip
    out = tmp_path / f"out{suffix}"
    args = ["upscale", str(src), "-m", model, "-o", str(out)]
    if frames:
        args += ["--frames", str(frames)]
    proc = ffsr(*args)
    assert proc.returncode == 0, proc.stderr
    info_in, info_out = probe(ffprobe_bin, src), probe(ffprobe_bin, out)
    assert (info_out.width, info_out.height) == (info_in.width * scale, info_in.height * scale)
    want_frames = frames or count_frames(ffprobe_bin, src)
    assert count_frames(ffprobe_bin, out) == want_frames
    if not frames and info_in.duration:
        assert info_out.duration == pytest.approx(info_in.duration, abs=0.1)
    if info_in.has_audio and suffix != ".gif" and not frames:
        assert audio_md5(ffmpeg_bin, out) == audio_md5(ffmpeg_bin, src)  # bit-exact copy
    if suffix == ".gif":
        assert info_out.codec == "gif"


def transparent_gif(ffmpeg: Path, src: Path, dest: Path) -> np.ndarray:
    """The shared GIF with its light background made transparent; returns its alpha."""
    info_w, info_h = 200, 150
    rgba = read_frames(ffmpeg, src, "rgba", info_w, info_h).copy()
    rgba[..., 3] = np.where(rgba[..., :3].min(axis=-1) > 200, 0, 255)
    raw = dest.with_suffix(".rgba")
    raw.write_bytes(rgba.tobytes())
    run(ffmpeg, "-f", "rawvideo", "-pix_fmt", "rgba", "-s", f"{info_w}x{info_h}", "-r", "10",
        "-i", str(raw), "-filter_complex",
        "split[a][b];[a]palettegen=reserve_transparent=1[p];[b][p]paletteuse=alpha_threshold=128",
        "-loop", "0", str(dest))
    return rgba[..., 3]


@pytest.mark.parametrize(("model", "scale"), [("espcn", 2), ("realesr-animevideov3", 4)])
def test_gif_with_transparency_stays_an_animated_transparent_gif(
        zoo_models: dict[str, ModelCard], ffmpeg_bin: Path, ffprobe_bin: Path, clips: Path,
        tmp_path: Path, model: str, scale: int) -> None:
    """The README's `ffsr upscale anim.gif -m realesr-animevideov3 -o anim_x4.gif` (and ESPCN
    x2): an animated GIF again, every frame, the transparent pixels still transparent."""
    src = tmp_path / "cradle.gif"
    src_alpha = transparent_gif(ffmpeg_bin, clips / "newtonscradle_200x150.gif", src)
    assert (src_alpha == 0).mean() > 0.2
    out = tmp_path / f"cradle_x{scale}.gif"
    proc = ffsr("upscale", str(src), "-m", model, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    info = probe(ffprobe_bin, out)
    assert (info.codec, info.width, info.height) == ("gif", 200 * scale, 150 * scale)
    assert count_frames(ffprobe_bin, out) == len(src_alpha)
    alpha = read_frames(ffmpeg_bin, out, "rgba", 200 * scale, 150 * scale)[..., 3]
    want = np.repeat(np.repeat(src_alpha, scale, axis=1), scale, axis=2)
    assert np.mean((alpha == 0) == (want == 0)) > 0.97, "transparency not kept"


def test_fps_doubles_frame_count_of_12_5_fps_clip(zoo_models: dict[str, ModelCard],
                                                   ffmpeg_bin: Path, ffprobe_bin: Path,
                                                   clips: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.mp4"
    run(ffmpeg_bin, "-i", str(clips / "car-detection_768x432.mp4"), "-t", "3", "-c", "copy",
        str(short))
    n_in = count_frames(ffprobe_bin, short)
    out = tmp_path / "out.mp4"
    proc = ffsr("upscale", str(short), "-m", "espcn", "--fps", "25", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    info = probe(ffprobe_bin, out)
    assert info.frame_rate == 25
    # minterpolate makes 2n-1 frames between n, +/- the clip's edges: within 5 %
    assert abs(count_frames(ffprobe_bin, out) - 2 * n_in) <= 0.05 * 2 * n_in
    assert audio_md5(ffmpeg_bin, out) == audio_md5(ffmpeg_bin, short)


def test_models_beat_lanczos_on_downscaled_clip(zoo_models: dict[str, ModelCard],
                                                ffmpeg_bin: Path, clips: Path,
                                                tmp_path: Path) -> None:
    """Downscale x2, upscale back, compare Y with the original: ESPCN beats lanczos."""
    src = clips / "carphone_176x144.mp4"
    small = tmp_path / "small.mkv"
    run(ffmpeg_bin, "-i", str(src), "-frames:v", "20", "-vf", "scale=88:72:flags=bicubic",
        "-c:v", "ffv1", str(small))
    original = read_yuv420p_y(ffmpeg_bin, src, 176, 144, frames=20)[:, 2:-2, 2:-2]
    lanczos = read_yuv420p_y(ffmpeg_bin, small, 176, 144,
                             vf="scale=176:144:flags=lanczos")[:, 2:-2, 2:-2]
    out = tmp_path / "espcn.mkv"
    proc = ffsr("upscale", str(small), "-m", "espcn", "--encoder", "ffv1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    model = read_yuv420p_y(ffmpeg_bin, out, 176, 144)[:, 2:-2, 2:-2]
    assert psnr(model, original) > psnr(lanczos, original) + 0.2


def decoded_md5(ffmpeg: Path, path: Path) -> str:
    out = subprocess.run([str(ffmpeg), "-v", "error", "-i", str(path), "-map", "0:v",
                          "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"], capture_output=True,
                         check=True)
    return hashlib.md5(out.stdout).hexdigest()


def test_graph_pasted_into_plain_ffmpeg_gives_the_same_frames(
        zoo_models: dict[str, ModelCard], ffmpeg_bin: Path, clips: Path, tmp_path: Path) -> None:
    src = clips / "carphone_176x144.mp4"
    ref = tmp_path / "ref.mkv"
    assert ffsr("upscale", str(src), "-m", "espcn", "--encoder", "ffv1", "--frames", "10",
                "-o", str(ref)).returncode == 0
    graph = ffsr("graph", "-m", "espcn")
    assert graph.returncode == 0, graph.stderr
    pasted = tmp_path / "pasted.mkv"
    run(ffmpeg_bin, "-i", str(src), "-vf", graph.stdout.strip(), "-frames:v", "10",
        "-c:v", "ffv1", str(pasted))
    assert decoded_md5(ffmpeg_bin, pasted) == decoded_md5(ffmpeg_bin, ref)
    # the whole command, as printed for scripts
    cmd = ffsr("graph", "-m", "espcn", "--command", "-i", str(src), "-o",
               str(tmp_path / "cmd.mp4"))
    assert cmd.returncode == 0, cmd.stderr
    subprocess.run(shlex.split(cmd.stdout.strip()), check=True, capture_output=True)
    ref_mp4 = tmp_path / "ref.mp4"
    assert ffsr("upscale", str(src), "-m", "espcn", "-o", str(ref_mp4)).returncode == 0
    assert decoded_md5(ffmpeg_bin, tmp_path / "cmd.mp4") == decoded_md5(ffmpeg_bin, ref_mp4)


def test_python_api(zoo_models: dict[str, ModelCard], clips: Path, tmp_path: Path,
                    ffprobe_bin: Path) -> None:
    import ffsr as api

    result = api.upscale(clips / "carphone_176x144.mp4", "espcn", tmp_path / "api.mp4", frames=5)
    assert result.frames == 5 and result.output.is_file()
    assert "dnn_processing" in api.graph("espcn", backend="onnx")


def bad(name: str, tmp_path: Path, ffmpeg_bin: Path,
        clips: Path) -> tuple[list[str], str, dict[str, str]]:
    """(ffsr args, expected message fragment, extra env) for each bad input."""
    carphone = str(clips / "carphone_176x144.mp4")
    if name == "missing file":
        return ["upscale", str(tmp_path / "nope.mp4"), "-m", "espcn"], "not found", {}
    if name == "not a video":
        p = tmp_path / "notes.mp4"
        p.write_text("hello, I am not a video\n")
        return ["upscale", str(p), "-m", "espcn"], "not a readable video", {}
    if name == "zero frames":
        p = tmp_path / "empty.y4m"
        p.write_bytes(b"YUV4MPEG2 W176 H144 F30:1 Ip A1:1 C420jpeg\n")
        return ["upscale", str(p), "-m", "espcn"], "rames", {}
    if name == "truncated":
        full = tmp_path / "fs.mp4"
        run(ffmpeg_bin, "-i", str(clips / "realshort_320x240.mp4"), "-c", "copy",
            "-movflags", "+faststart", str(full))
        p = tmp_path / "cut.mp4"
        p.write_bytes(full.read_bytes()[:50000])
        full.unlink()
        return ["upscale", str(p), "-m", "espcn"], "truncated", {}
    if name == "scale mismatch":
        return ["upscale", carphone, "-m", "espcn", "--scale", "4", "-o",
                str(tmp_path / "o.mp4")], "--scale 4 does not match", {}
    if name == "unknown model":
        return ["upscale", carphone, "-m", "nosuchnet", "-o", str(tmp_path / "o.mp4")], \
            "Unknown model", {}
    if name == "ffmpeg without DNN":
        return ["upscale", carphone, "-m", "espcn", "-o", str(tmp_path / "o.mp4")], \
            "DNN backend", no_ffsr_build_env(tmp_path.parent / "cache")  # Debian's, on PATH
    if name == "no docker engine":
        return ["upscale", carphone, "-m", "espcn", "--runtime", "docker", "-o",
                str(tmp_path / "o.mp4")], "No Docker engine", \
            {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    if name == "cuda without gpu":
        return ["upscale", carphone, "-m", "espcn", "--device", "cuda", "--frames", "2", "-o",
                str(tmp_path / "o.mp4")], "GPU", {}
    if name == "existing output":
        (tmp_path / "o.mp4").write_bytes(b"keep me")
        return ["upscale", carphone, "-m", "espcn", "-o", str(tmp_path / "o.mp4")], "--overwrite", {}
    raise AssertionError(name)


BAD = ["missing file", "not a video", "zero frames", "truncated", "scale mismatch",
       "unknown model", "ffmpeg without DNN", "no docker engine", "cuda without gpu",
       "existing output"]


@pytest.mark.parametrize("name", BAD)
def test_bad_input_fails_cleanly(zoo_models: dict[str, ModelCard], ffmpeg_bin: Path,
                                 clips: Path, tmp_path: Path, name: str) -> None:
    if name == "ffmpeg without DNN" and not Path("/usr/bin/ffmpeg").exists():
        pytest.fail("Debian's ffmpeg is missing (.ci/run installs it: apt-get install ffmpeg)")
    work = tmp_path / "work"
    work.mkdir()
    args, fragment, env = bad(name, work, ffmpeg_bin, clips)
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    proc = ffsr(*args, cwd=work, env=env)
    assert proc.returncode != 0, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and fragment in last, proc.stderr
    assert "Traceback" not in proc.stderr
    after = {p.name: p.read_bytes() for p in work.iterdir()}
    assert after == before, "an output or partial file was left behind"


def test_ten_bit_input_is_processed_in_8_bits_with_a_note(
        zoo_models: dict[str, ModelCard], ffmpeg_bin: Path, ffprobe_bin: Path, clips: Path,
        tmp_path: Path) -> None:
    ten = tmp_path / "ten.mkv"
    run(ffmpeg_bin, "-i", str(clips / "carphone_176x144.mp4"), "-frames:v", "5", "-c:v", "ffv1",
        "-pix_fmt", "yuv420p10le", str(ten))
    proc = ffsr("upscale", str(ten), "-m", "espcn", "-o", str(tmp_path / "o.mp4"))
    assert proc.returncode == 0, proc.stderr
    assert "8-bit" in proc.stderr
    info = probe(ffprobe_bin, tmp_path / "o.mp4")
    assert (info.width, info.pix_fmt) == (352, "yuv420p")


def test_progress_bar_is_live_on_a_terminal(zoo_models: dict[str, ModelCard], ffmpeg_bin: Path,
                                            tmp_path: Path) -> None:
    """A 30-second clip under a pseudo-terminal shows a bar whose frame count advances."""
    import pty
    import select

    clip = tmp_path / "thirty.mp4"
    run(ffmpeg_bin, "-f", "lavfi", "-i", "testsrc2=s=176x144:r=30:d=30", "-c:v", "libx264",
        "-preset", "ultrafast", str(clip))
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI on a terminal
        os.environ["COLUMNS"] = "120"
        os.execv(sys.executable, [sys.executable, "-m", "ffsr", "upscale", str(clip), "-m",
                                  "espcn", "-o", str(tmp_path / "out.mp4")])
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data.decode(errors="replace"))
    _, status = os.waitpid(pid, 0)
    screen = "".join(chunks)
    assert os.waitstatus_to_exitcode(status) == 0, screen[-2000:]
    counts = sorted({int(c) for c in __import__("re").findall(r"(\d+)/900", screen)})
    assert len(counts) >= 3 and counts[-1] == 900, counts
    assert "fps" in screen and "ETA" in screen


@pytest.mark.docker
def test_upscale_in_the_image_matches_the_local_run(zoo_models: dict[str, ModelCard],
                                                    cpu_image: str, ffmpeg_bin: Path,
                                                    ffprobe_bin: Path, clips: Path,
                                                    tmp_path: Path) -> None:
    """--runtime docker: the same command in the ffsr image (no network, non-root,
    input read-only), audio kept, pixels as the local run, nothing left behind."""
    src = clips / "realshort_320x240.mp4"
    local, docker = tmp_path / "local.mkv", tmp_path / "docker.mkv"
    for out, runtime in ((local, "local"), (docker, "docker")):
        proc = ffsr("upscale", str(src), "-m", "espcn", "--encoder", "ffv1", "--runtime", runtime,
                    "--image", cpu_image, "-o", str(out))
        assert proc.returncode == 0, proc.stderr
    info = probe(ffprobe_bin, docker)
    assert (info.width, info.height) == (640, 480)
    assert count_frames(ffprobe_bin, docker) == count_frames(ffprobe_bin, src)
    assert audio_md5(ffmpeg_bin, docker) == audio_md5(ffmpeg_bin, src)
    a = read_yuv420p_y(ffmpeg_bin, local, 640, 480)
    b = read_yuv420p_y(ffmpeg_bin, docker, 640, 480)
    assert psnr(a, b) > 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docker.mkv", "local.mkv"]
