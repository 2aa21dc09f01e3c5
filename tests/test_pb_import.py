"""`-m file.pb`: a frozen TensorFlow graph a user already has, made here the old way from the
hvrr ESPCN checkpoint (variables restored, then convert_variables_to_constants, as
HighVoltageRocknRoll/sr's generate_header_and_model.py did), upscales through ffmpeg's
tensorflow backend like TensorFlow itself; graphs FFmpeg cannot feed are refused in one
sentence with nothing written. TensorFlow runs in child processes, as in test_zoo_pixels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_model_import import assert_one_sentence, ffsr, models_in

from ffsr.media import read_yuv420p_y
from ffsr.model_card import load_card
from ffsr.quality import compare_8bit, to_8bit

CLIP = "carphone_176x144.mp4"
W, H = 176, 144
FRAMES = 2

BUILD = """
import sys
from pathlib import Path
from ffsr_convert import import_tensorflow
from ffsr_convert.exporters import sr_graph
from ffsr_convert.weights import from_tf_checkpoint
tf = import_tensorflow()
tf.compat.v1.disable_eager_execution()
ckpt, out = sys.argv[1:]
net = from_tf_checkpoint("espcn", Path(ckpt), 2)  # layer shapes and activations
graph = tf.Graph()
with graph.as_default():
    sr_graph(tf, net, lambda i, kind, v: tf.compat.v1.get_variable(f"espcn/conv{i}/{kind}",
                                                                   v.shape))
    with tf.compat.v1.Session(graph=graph) as sess:
        tf.compat.v1.train.Saver().restore(sess, ckpt)  # the weights come from here
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            sess, graph.as_graph_def(), ["y"])
Path(out).write_bytes(frozen.SerializeToString())

# Graphs FFmpeg cannot feed: two placeholders; an int32 input.
for name, dtypes in (("two_inputs", ("float32", "float32")), ("int_input", ("int32",))):
    g = tf.Graph()
    with g.as_default():
        xs = [tf.compat.v1.placeholder(d, [1, None, None, 1], name=f"x{i}")
              for i, d in enumerate(dtypes)]
        tf.identity(tf.add_n([tf.cast(x, tf.float32) for x in xs]), name="y")
    (Path(out).parent / f"{name}.pb").write_bytes(g.as_graph_def().SerializeToString())

# Nearest x2 with a second placeholder it does not use and two end ops (the frame, and a
# statistic nobody feeds on): FFmpeg can run it once told which tensors are meant.
g = tf.Graph()
with g.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [1, None, None, 1], name="x")
    tf.compat.v1.placeholder(tf.float32, [1, None, None, 1], name="unused")
    tf.identity(tf.nn.depth_to_space(tf.tile(x, [1, 1, 1, 4]), 2), name="y")
    tf.reduce_mean(x, name="mean")
(Path(out).parent / "two_ends.pb").write_bytes(g.as_graph_def().SerializeToString())
"""

RUN = """
import sys
import numpy as np
import pytest
from pathlib import Path
from ffsr_convert.exporters import run_frozen_graph
pb, frames_in, frames_out = sys.argv[1:]
y = np.load(frames_in).astype(np.float32) / 255
out = run_frozen_graph(Path(pb), [f[None, None] for f in y])
np.save(frames_out, np.concatenate(out)[:, 0])
"""


def python(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow  # ~90 s on the loaded 2-core machine: four TensorFlow start-ups
def test_frozen_pb_made_the_old_way_upscales_like_tensorflow(
        shared_data: Path, clips: Path, ffmpeg_bin: Path, tmp_path: Path) -> None:
    pb = tmp_path / "espcn.pb"
    python(BUILD, str(shared_data / "checkpoints/hvrr-sr/espcn/model_100.ckpt"), str(pb))
    cache = tmp_path / "cache"
    out = tmp_path / "out.mkv"
    proc = ffsr(cache, "upscale", str(clips / CLIP), "-m", str(pb), "--frames", str(FRAMES),
                "--encoder", "ffv1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "importing as espcn-" in proc.stdout + proc.stderr
    got = read_yuv420p_y(ffmpeg_bin, out, W * 2, H * 2)
    np.save(tmp_path / "in.npy", read_yuv420p_y(ffmpeg_bin, clips / CLIP, W, H, FRAMES))
    python(RUN, str(pb), str(tmp_path / "in.npy"), str(tmp_path / "tf.npy"))
    report = compare_8bit(got, to_8bit(np.load(tmp_path / "tf.npy")))
    assert report.within_one >= 0.999, report

    # Imported once: the graph reuses the card, on the tensorflow backend, both filters.
    (name,) = models_in(cache)
    graph = ffsr(cache, "graph", "-m", str(pb))
    assert graph.returncode == 0, graph.stderr
    assert "imported before" in graph.stdout + graph.stderr
    assert "dnn_backend=tensorflow" in graph.stdout and f"{name}.pb:input=x:output=y" in graph.stdout
    sr = ffsr(cache, "graph", "-m", str(pb), "--form", "sr")
    assert sr.returncode == 0 and "sr=dnn_backend=tensorflow" in sr.stdout, sr.stderr
    assert_one_sentence(ffsr(cache, "upscale", str(clips / CLIP), "-m", str(pb), "--backend",
                             "onnx", "-o", str(tmp_path / "no.mkv")),
                        "tensorflow backend only", "--backend tensorflow")
    assert not (tmp_path / "no.mkv").exists()

    # convert-model --checkpoint: a .pb is kept for the tensorflow backend only.
    fresh = tmp_path / "cache-convert"
    assert_one_sentence(ffsr(fresh, "convert-model", "--checkpoint", str(pb), "--backends", "onnx"),
                        "tensorflow backend only")
    # Graphs FFmpeg cannot feed: one sentence, nothing in the cache, no output.
    assert_one_sentence(ffsr(fresh, "convert-model", "--checkpoint", str(tmp_path / "two_inputs.pb")),
                        "2 placeholders (x0, x1)", "exactly one input tensor")
    assert not models_in(fresh)
    fresh = tmp_path / "cache-int"
    assert_one_sentence(ffsr(fresh, "upscale", str(clips / CLIP), "-m",
                             str(tmp_path / "int_input.pb"), "-o", str(tmp_path / "int.mkv")),
                        "input 'x0' is int32")
    assert not models_in(fresh) and not (tmp_path / "int.mkv").exists()

    # Two placeholders, two end ops: -m cannot tell which tensors are meant; convert-model
    # --input-tensor and --output-tensor say.
    fresh = tmp_path / "cache-ends"
    ends = str(tmp_path / "two_ends.pb")
    assert_one_sentence(ffsr(fresh, "upscale", str(clips / CLIP), "-m", ends,
                             "-o", str(tmp_path / "ends.mkv")),
                        "2 placeholders (x, unused)", "--input-tensor NAME")
    assert_one_sentence(ffsr(fresh, "convert-model", "--checkpoint", ends, "--input-tensor", "x"),
                        "ends in 2 operations (y, mean)", "--output-tensor NAME")
    assert not models_in(fresh)
    named = ffsr(fresh, "convert-model", "--checkpoint", ends, "--input-tensor", "x",
                 "--output-tensor", "y", "--name", "nearest2")
    assert named.returncode == 0, named.stderr
    card = load_card(fresh / "ffsr" / "models" / "nearest2" / "nearest2.card.json")
    assert (card.scale, card.files["tensorflow"].output, card.files["tensorflow"].channels) == (
        2, "y", 1)
