"""RIFE in the graph against FFmpeg's own interpolators (issue 12): steady-state output fps
of a 2x frame rate, per DNN backend, in one run: `.venv/bin/python benchmarks/interpolation.py`.

Every path is one ffmpeg process (ffsr's own build) running the graph `ffsr graph --fps`
renders for it (``render_interpolation``) on the same frames of the same clips, to
``-f null``. Prints a markdown table and writes benchmarks/results/cpu-interpolation-<date>.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from run import load, side_report

from ffsr import bench
from ffsr.bench import Measurement, fmt, markdown_table
from ffsr.ffmpeg_tools import capabilities
from ffsr.filtergraph import GraphOptions, render_interpolation
from ffsr.interpolation.rife import rife_model
from ffsr.media import probe
from ffsr.paths import SHARED_DATA_DIR

CLIPS = (("carphone_176x144.mp4", None), ("realshort_320x240.mp4", None),
         ("car-detection_768x432.mp4", (640, 360)))
"""Shared clips (scaled to the size given, from their start)."""
RIFE_BACKENDS = ("onnx", "openvino")


def paths(dnn_backends: set[str]) -> list[tuple[str, str]]:
    """(interpolation, backend) pairs to time: FFmpeg's two, then RIFE per backend it has."""
    return [("framerate", ""), ("minterpolate", "")] + [
        ("rife", b) for b in RIFE_BACKENDS if b in dnn_backends]


def measure(tools: bench.Tools, clip: Path, frames: int, interpolation: str, backend: str,
            model: str) -> Measurement:
    rate = probe(tools.ffprobe, clip).frame_rate or Fraction(25)
    opts = GraphOptions(backend=backend or "onnx", fps=2 * rate, interpolation=interpolation,
                        interpolator_model=model)
    graph = f"[0:v:0]{render_interpolation(opts)}[vout]"
    return bench.measure_graph(tools.ffmpeg, clip, graph, 2 * frames, interpolation, backend)[0]


def table(rows: list[tuple[str, list[Measurement]]]) -> str:
    labels = [f"{m.path} {m.backend}".strip() for m in rows[0][1]]
    body = []
    for name, ms in rows:
        mint = next(m.fps for m in ms if m.path == "minterpolate")
        rife = [m for m in ms if m.path == "rife"]
        best = max(rife, key=lambda m: m.fps) if rife else None
        ratio = f"{best.fps / mint:.2f}× ({best.backend})" if best and mint else "–"
        body.append([name, *(fmt(m.fps, 2) for m in ms), ratio])
    return markdown_table(["clip (input frames)", *labels, "RIFE best ÷ minterpolate"], body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=24, help="input frames per clip (output: 2x)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    tools = bench.find_tools()
    caps = capabilities(tools.ffmpeg)
    model = str(rife_model(log=lambda s: print(s, file=sys.stderr)).path)
    started, load_before = time.monotonic(), load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ffsr-interp-bench-") as tmp:
        for name, size in CLIPS:
            clip = SHARED_DATA_DIR / "clips" / name
            if size:
                clip = bench.make_clip(tools.ffmpeg, clip, Path(tmp) / f"{clip.stem}_{size[0]}.mp4",
                                       size[0], size[1], args.frames)
            info = probe(tools.ffprobe, clip)
            ms = [measure(tools, clip, args.frames, interp, backend, model)
                  for interp, backend in paths(set(caps.dnn_backends))]
            rows.append((f"{name.split('_')[0]} {info.width}×{info.height} ({args.frames})", ms))
            print(f"{name}: " + ", ".join(f"{m.label} {fmt(m.fps, 2)}" for m in ms), file=sys.stderr)
    took = (time.monotonic() - started) / 60
    side_report("RIFE in the graph against FFmpeg's interpolators",
                f".venv/bin/python benchmarks/interpolation.py --frames {args.frames}", took,
                load_before, [
        "Output frames per second at steady state (start-up and model load excluded) of a 2x "
        "frame rate, each path one ffmpeg process running the graph `ffsr graph --fps` renders "
        "(`framerate`: blend; `minterpolate`: ffsr's default, motion compensated; `rife`: "
        "RIFE HD v3 side by side through `dnn_processing`, per DNN backend, f32).", "",
        table(rows)], "cpu-interpolation", not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
