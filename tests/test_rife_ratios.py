"""RIFE v4 at rate ratios other than 2x (issue 12): the network written here equals the
reference IFNet; its timed wrapper ([frame a | frame b | t-band] in one image) exported to
ONNX equals PyTorch. RIFE on a 2-core CPU is slow, so every clip here is a few small
frames."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def v4_checkpoint(shared_data: Path) -> Path:
    return shared_data / "checkpoints/rife/v4/flownet.pkl"


def _smooth_pair(h: int, w: int) -> tuple[object, object]:
    g = torch.Generator().manual_seed(7)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g),
                                           size=(h + 8, w + 8), mode="bicubic").clamp(0, 1)
    return base[:, :, 4:4 + h, 4:4 + w], base[:, :, 2:2 + h, 7:7 + w]


def test_v4_network_equals_the_reference_ifnet(shared_data: Path, v4_checkpoint: Path) -> None:
    """Our IFNetV4 against the reference code shipped with the checkpoint (loaded as it says:
    strict=False), at two timesteps, on one 128x192 pair (multiples of 64, no padding)."""
    from ffsr_convert.rife.net_v4 import SCALES, load_v4

    spec = importlib.util.spec_from_file_location(
        "rife_v4_reference", shared_data / "checkpoints/rife/v4/reference-ifnet.py")
    assert spec and spec.loader
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    ref = reference.IFNet(torch.device("cpu"))
    ref.load_state_dict(torch.load(str(v4_checkpoint), map_location="cpu", weights_only=True),
                        strict=False)
    ref.eval()
    ours = load_v4(v4_checkpoint)
    a, b = _smooth_pair(128, 192)
    for t in (0.5, 0.3):
        with torch.no_grad():
            want = ref(torch.cat((a, b), 1), t, SCALES)[2][4]
            got = ours(a, b, torch.tensor(t).view(1, 1, 1, 1))
        assert float((want - got).abs().max()) * 255 < 0.01
        # and t matters: the frame at 0.3 is not the one at 0.5
    with torch.no_grad():
        half = ours(a, b, torch.tensor(0.5).view(1, 1, 1, 1))
    assert float((half - got).abs().mean()) * 255 > 0.2


def test_timed_wrapper_reads_t_from_the_band(v4_checkpoint: Path) -> None:
    """The wrapper runs the network at exactly k/q (here 400/1001, the 24000/1001 -> 60
    case), padding 72x100 to 128x128 by edge replication and cropping back."""
    from ffsr_convert.rife.export import build_timed
    from ffsr_convert.rife.timed import timed_input

    wrapper = build_timed(v4_checkpoint)
    a, b = _smooth_pair(72, 100)
    pad = [0, 28, 0, 56]
    with torch.no_grad():
        got = wrapper(timed_input(a, b, 400, 1001))
        want = wrapper.net(torch.nn.functional.pad(a, pad, mode="replicate"),
                           torch.nn.functional.pad(b, pad, mode="replicate"),
                           torch.tensor(400 / 1001).view(1, 1, 1, 1))[:, :, :72, :100]
    assert got.shape == (1, 3, 72, 100)
    assert float((got - want.clamp(0, 1)).abs().max()) < 1e-6
    with pytest.raises(ValueError, match="does not fit"):
        timed_input(a[:, :, :8, :8], b[:, :, :8, :8], 1, 100)


@pytest.fixture(scope="module")
def rife_v4() -> Path:
    """RIFE v4 converted into the session's cache as --interpolation rife does on first use
    (export checked against PyTorch at two sizes and two timesteps)."""
    from ffsr.interpolation.rife import V4, rife_model

    model = rife_model(log=lambda _: None, name=V4)
    assert model.fidelity["onnxruntime_vs_torch_within_one_level"] >= 0.999
    assert model.fidelity["onnxruntime_vs_torch_max_levels"] <= 1.0
    return model.path


def test_v4_is_converted_with_its_card(rife_v4: Path) -> None:
    import json

    card = json.loads(rife_v4.with_name("rife-v4.interp.json").read_text())
    assert card["name"] == "rife-v4" and card["ratio"] == "any"
    assert "t-band" in card["layout"]
    assert card["source"]["path"] == "checkpoints/rife/v4/flownet.pkl"
