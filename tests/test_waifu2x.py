"""waifu2x in the zoo: the real waifu2x-chainer .npz weights, converted by ffsr and run by
the real ffmpeg, give what waifu2x's own block-wise run with edge padding gives (≤1 level on
≥99.9 % of samples, the frame's edges included)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ffsr.media import read_frames
from ffsr.model_card import ModelCard
from ffsr.quality import compare_8bit, to_8bit

pytest.importorskip("torch")

W2X = "checkpoints/waifu2x-chainer"
NOISE3 = "waifu2x-upconv7-noise3"
GIF = "newtonscradle_200x150.gif"
FRAMES = 2
EDGE = 14  # output pixels UpConv7 consumes at each edge: where the padding decides


def ffsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=600)


def waifu2x_run(npz: Path, rgb: np.ndarray) -> np.ndarray:
    """The .npz network in PyTorch, run the way waifu2x runs it, on uint8 frames [N,H,W,3]."""
    from ffsr_convert.waifu2x.nets import build_net
    from ffsr_convert.waifu2x.npz import read_npz, spec_for
    from ffsr_convert.waifu2x.reference import blockwise

    weights = read_npz(npz)
    spec = spec_for(weights)
    net = build_net(spec, weights)
    out = [blockwise(net, spec, f.transpose(2, 0, 1)[None].astype(np.float32) / 255) for f in rgb]
    return to_8bit(np.concatenate(out).transpose(0, 2, 3, 1))


def edges(a: np.ndarray) -> np.ndarray:
    """The samples within EDGE pixels of the frame's border, [N,H,W,C] -> flat."""
    mask = np.ones(a.shape[1:3], bool)
    mask[EDGE:-EDGE, EDGE:-EDGE] = False
    return a[:, mask]


@pytest.mark.parametrize(("npz", "arch", "scale"), [
    ("upconv7/anime_style_noise3_scale_rgb.npz", "waifu2x-UpConv7", 2),
    ("upresnet10/anime_style_noise3_scale_rgb.npz", "waifu2x-UpResNet10", 2),
    ("vgg7/anime_style_scale_rgb.npz", "waifu2x-VGG7", 2),
    ("vgg7/anime_style_noise2_rgb.npz", "waifu2x-VGG7", 1),
], ids=["upconv7", "upresnet10", "vgg7-scale", "vgg7-noise2"])
def test_exported_module_equals_waifu2x_blockwise(shared_data: Path, npz: str, arch: str,
                                                  scale: int) -> None:
    """The module that is exported (edge replication inside; VGG7 x2 also its nearest 2x,
    UpResNet10 also waifu2x's blocks) equals waifu2x's overlapping 128-pixel blocks, on a
    frame that is not a multiple of the block."""
    import torch
    from ffsr_convert.waifu2x import load_waifu2x

    model = load_waifu2x(shared_data / W2X / npz, None, None)
    assert (model.arch, model.scale, model.color) == (arch, scale, "rgb")
    x = np.random.default_rng(0).random((1, 3, 70, 93), dtype=np.float32)
    with torch.no_grad():
        whole = model.module(torch.from_numpy(x)).numpy()
    assert model.reference is not None
    blocks = model.reference(x)
    assert whole.shape == blocks.shape == (1, 3, 70 * scale, 93 * scale)
    assert float(np.abs(whole - blocks).max()) < 1e-4


@pytest.fixture(scope="module")
def noise3(ffmpeg_bin: Path, shared_data: Path) -> ModelCard:
    """waifu2x-upconv7-noise3 converted into the session's cache (where `ffsr upscale` finds
    it), ONNX (the backend the upscale test runs), verified in onnxruntime and in ffmpeg by
    the pipeline. OpenVINO and LibTorch files are the same module; kept out for time."""
    from ffsr.convert_model import convert_zoo_model
    from ffsr.paths import converted_models_dir

    return convert_zoo_model(NOISE3, converted_models_dir(), backends=("onnx",),
                             log=lambda _: None)


def test_conversion_matches_waifu2x_in_its_runtime_and_in_ffmpeg(noise3: ModelCard) -> None:
    assert (noise3.arch, noise3.scale, noise3.model_scale, noise3.prescale) == \
        ("waifu2x-UpConv7", 2, 2, 1)
    assert set(noise3.files) == {"onnx"}
    for backend, mf in noise3.files.items():
        for check in ("runtime", "ffmpeg"):
            result = mf.fidelity[check]
            assert result["passes"] and result["within_one"] >= 0.999, (backend, check, result)


@pytest.mark.parametrize(("name", "arch", "scale", "color"), [
    ("waifu2x-upresnet10-noise3", "waifu2x-UpResNet10", 2, "rgb"),
    ("waifu2x-vgg7-noise1", "waifu2x-VGG7", 1, "rgb"),
    ("waifu2x-vgg7-y", "waifu2x-VGG7", 2, "y"),
], ids=["upresnet10-noise3", "vgg7-noise1", "vgg7-y"])
def test_other_families_match_waifu2x_in_ffmpeg(ffmpeg_bin: Path, clips: Path, tmp_path: Path,
                                                name: str, arch: str, scale: int, color: str) -> None:
    """UpResNet10 (its squeeze-excitation depends on waifu2x's blocks: the ONNX file cuts the
    same blocks itself), VGG7 x1 denoising and VGG7 x2 on luma (nearest 2x inside): ffmpeg's
    frames match waifu2x's block-wise run, on a 100x76 crop (2x2 blocks for UpResNet10, the
    last ones partly outside the frame)."""
    from ffsr.convert_model import convert_zoo_model

    small = tmp_path / "small.mkv"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", str(clips / "carphone_176x144.mp4"),
                    "-frames:v", "2", "-vf", "crop=100:76:30:30", "-c:v", "ffv1", str(small)],
                   check=True)
    card = convert_zoo_model(name, tmp_path / "models", backends=("onnx",),
                             verify_clip=small, log=lambda _: None)
    assert (card.arch, card.scale, card.model_scale, card.color) == (arch, scale, scale, color)
    for check in ("runtime", "ffmpeg"):
        result = card.files["onnx"].fidelity[check]
        assert result["passes"] and result["within_one"] >= 0.999, (check, result)


def test_upscale_gif_equals_waifu2x_with_its_own_padding(noise3: ModelCard, ffmpeg_bin: Path,
                                                         clips: Path, shared_data: Path,
                                                         tmp_path: Path) -> None:
    """`ffsr upscale anim.gif -m waifu2x-upconv7-noise3` (lossless .apng out) against the .npz
    network run as waifu2x runs it, on the same decoded frames: edges included."""
    out = tmp_path / "cradle_x2.apng"
    proc = ffsr("upscale", str(clips / GIF), "-m", NOISE3, "--backend", "onnx",
                "--frames", str(FRAMES), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    got = read_frames(ffmpeg_bin, out, "rgba", 400, 300)[..., :3]
    src = read_frames(ffmpeg_bin, clips / GIF, "rgb24", 200, 150, FRAMES)
    want = waifu2x_run(shared_data / W2X / "upconv7/anime_style_noise3_scale_rgb.npz", src)
    assert got.shape == want.shape == (FRAMES, 300, 400, 3)
    whole, border = compare_8bit(got, want), compare_8bit(edges(got), edges(want))
    assert whole.passes and whole.within_one >= 0.999, whole
    assert border.within_one >= 0.999, border
    # the model did something a bicubic upscale would not (noise 3 smooths strongly)
    bicubic = read_frames(ffmpeg_bin, clips / GIF, "rgb24", 400, 300, FRAMES,
                          vf="scale=400:300:flags=bicubic")
    assert compare_8bit(got, bicubic).psnr < 45


@pytest.mark.parametrize(("npz", "args", "fragment"), [
    ("vgg7/anime_style_noise1_rgb.npz", ["--arch", "UpConv7"], "holds a waifu2x VGG7 model"),
    ("upconv7/anime_style_scale_rgb.npz", ["--scale", "4"], "is a x2 waifu2x UpConv7 model"),
], ids=["wrong-arch", "wrong-scale"])
def test_npz_refusals_are_one_sentence(shared_data: Path, tmp_path: Path, npz: str,
                                       args: list[str], fragment: str) -> None:
    out = tmp_path / "out"
    proc = ffsr("convert-model", "--checkpoint", str(shared_data / W2X / npz), *args,
                "-o", str(out), "--runtime", "local")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "error:" in last and fragment in last, proc.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_readme_gif_example_with_noise2(ffmpeg_bin: Path, ffprobe_bin: Path, clips: Path,
                                        shared_data: Path, tmp_path: Path) -> None:
    """The README's `ffsr upscale anim.gif -m waifu2x-upconv7-noise2 -o anim_x2.gif` as typed
    (the model converted on first use): an animated GIF at 2x with every frame, whose frames
    are waifu2x's (palette loss aside) far more than a bicubic upscale's."""
    from ffsr.media import count_frames

    anim = tmp_path / "anim.gif"
    shutil.copy(clips / GIF, anim)
    proc = subprocess.run([sys.executable, "-m", "ffsr", "upscale", "anim.gif", "-m",
                           "waifu2x-upconv7-noise2", "-o", "anim_x2.gif"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "anim_x2.gif"
    assert count_frames(ffprobe_bin, out) == count_frames(ffprobe_bin, anim)
    got = read_frames(ffmpeg_bin, out, "rgb24", 400, 300, FRAMES)
    src = read_frames(ffmpeg_bin, anim, "rgb24", 200, 150, FRAMES)
    want = waifu2x_run(shared_data / W2X / "upconv7/anime_style_noise2_scale_rgb.npz", src)
    bicubic = read_frames(ffmpeg_bin, anim, "rgb24", 400, 300, FRAMES,
                          vf="scale=400:300:flags=bicubic")
    model, plain = compare_8bit(got, want).psnr, compare_8bit(bicubic, want).psnr
    assert model > 45 and model > plain + 10, f"GIF {model:.1f} dB from waifu2x, bicubic {plain:.1f} dB"
