"""The peer comparison of issue 9 as a report section: ffsr per backend and precision
against vs-mlrt (ov, ort) and ONNX Runtime / OpenVINO alone, same ONNX file, same frames,
one run; then whole-job wall time against `vspipe | ffmpeg`, and ffsr's start-up overhead.

``benchmarks/run.py`` includes it (``--peers only`` runs just this); on its own:
``.venv/bin/python benchmarks/peers/report.py [--frames 40] [--models espcn]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `peers` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ffsr import bench
from ffsr.bench import Measurement, fmt, markdown_table
from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import capabilities
from ffsr.model_card import ModelCard
from ffsr.paths import SHARED_DATA_DIR
from ffsr.upscale_job import resolve_cards
from peers import peer_env, vsmlrt
from peers.vsmlrt import EndToEnd, Startup

PLANS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    # Real-ESRGAN Compact x4 costs ~30x ESPCN per pixel: 320x180 takes ~0.2-0.5 s a frame here.
    ("realesr-animevideov3", ((320, 180), (480, 270))),
    ("espcn", ((640, 360), (960, 540))),
)
QUICK_PLANS = (("espcn", ((640, 360),)),)
CLIPS = ("car-detection_768x432.mp4", "realshort_320x240.mp4", "carphone_176x144.mp4")
SOURCE_START = {"car-detection_768x432.mp4": 4.0}
"""Seconds into the clip where the frames start (car-detection: where the car is in view)."""
PEER_PATHS = ("vs-mlrt ov", "vs-mlrt ort", "ORT alone", "OpenVINO alone default",
              "OpenVINO alone f32")


@dataclass
class PeerRow:
    card: ModelCard
    size: tuple[int, int]
    frames: int
    ms: list[Measurement] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    auto: str | None = None
    """The column `--backend auto` runs on this machine (ffsr.backend_choice's measurement)."""

    def get(self, label: str) -> Measurement | None:
        return next((m for m in self.ms if m.label == label), None)

    def best_ffsr(self) -> Measurement | None:
        """The fastest of ffsr's own settings (a column with other streams only backs the rule
        for its default)."""
        return max((m for m in self.ms if m.path == "ffsr" and not m.backend.endswith("stream")),
                   key=lambda m: m.fps, default=None)


def source_clip() -> Path:
    for name in CLIPS:
        if (path := SHARED_DATA_DIR / "clips" / name).exists():
            return path
    raise FfsrError(f"none of {', '.join(CLIPS)} is in {SHARED_DATA_DIR / 'clips'}")


def time_row(tools: bench.Tools, peer: peer_env.PeerEnv, row: PeerRow, clip: Path,
             backends: Sequence[str] | None, log: Callable[[str], None], repeats: int = 1) -> None:
    """Every path on the same y4m, back to back, ``repeats`` interleaved rounds keeping each
    path's best (other load only slows a run); a path that fails is noted, not fatal."""
    card, n = row.card, row.frames
    steps: list[tuple[str, Callable[[], Measurement]]] = []
    for v in vsmlrt.ffsr_variants(tools, card, sorted(capabilities(tools.ffmpeg).dnn_backends),
                                  backends):
        steps.append((v.label, lambda v=v: vsmlrt.measure_ffsr(tools, clip, card, n, v)))  # type: ignore[misc]
    steps += [
        ("vs-mlrt ov", lambda: vsmlrt.measure_vsmlrt(peer, clip, card, n, "ov")),
        ("vs-mlrt ort", lambda: vsmlrt.measure_vsmlrt(peer, clip, card, n, "ort")),
        ("ORT alone", lambda: vsmlrt.measure_alone(peer, tools, clip, card, n, "ort")),
        ("OpenVINO alone default", lambda: vsmlrt.measure_alone(peer, tools, clip, card, n, "ov")),
        ("OpenVINO alone f32",
         lambda: vsmlrt.measure_alone(peer, tools, clip, card, n, "ov", "f32")),
    ]
    runs: dict[str, list[Measurement]] = {name: [] for name, _ in steps}
    for _ in range(max(1, repeats)):
        for name, step in steps:
            if name in row.failed:
                continue
            log(f"  {name} ({n} frames)")
            try:
                runs[name].append(step())
            except FfsrError as e:
                row.failed[name] = str(e)
                log(f"    failed: {e}")
    row.ms += [bench.best_of(r) for r in runs.values() if r]


def auto_column(tools: bench.Tools, card: ModelCard, log: Callable[[str], None]) -> str | None:
    """The column that ffsr's default runs: the backend `--backend auto` measures fastest on
    this machine (cached like a user's run) at the precision `--precision auto` takes."""
    from ffsr.backend_choice import fastest_backend
    from ffsr.precision import resolve_precision
    from ffsr.upscale_job import AUTO_ORDER

    caps = capabilities(tools.ffmpeg)
    choice = fastest_backend([card], tools.ffmpeg, caps, AUTO_ORDER["cpu"], "auto", log)
    if choice is None:
        choice = next((b for b in AUTO_ORDER["cpu"] if b in caps.dnn_backends
                       and b in card.files), None)
    if choice is None:
        return None
    precision = resolve_precision("auto", choice, "cpu", [card])
    return f"ffsr {choice}" + (f" {precision}" if precision else "")


def _fps(m: Measurement | None) -> str:
    if m is None:
        return "–"
    cell = fmt(m.fps, 2 if m.fps < 10 else 1)
    ran = m.detail.removeprefix("ran ")
    if m.path.startswith("OpenVINO alone") and m.detail:
        return f"{cell} ({m.detail})"
    if m.path == "ffsr" and ran and ran not in m.backend.split():
        return f"{cell} (ran {ran})"
    return cell


def throughput_table(rows: Sequence[PeerRow]) -> str:
    ffsr_cols = list(dict.fromkeys(m.label for r in rows for m in r.ms if m.path == "ffsr"))
    ffsr_cols += [k for r in rows for k in r.failed if k.startswith("ffsr") and k not in ffsr_cols]
    head = ("model", "input → output", "frames", *ffsr_cols, *PEER_PATHS,
            "ffsr default (auto's pick) ÷ vs-mlrt ov", "ffsr best ÷ vs-mlrt ov",
            "ffsr best ÷ ffsr onnx")
    out = []
    for r in rows:
        w, h = r.size
        s = r.card.scale
        best, ov, onnx = r.best_ffsr(), r.get("vs-mlrt ov"), r.get("ffsr onnx")

        def ratio(a: Measurement | None, b: Measurement | None) -> str:
            return f"{a.fps / b.fps:.2f}×" if a and b and b.fps else "–"

        cells = [_fps(r.get(c)) if c not in r.failed else "failed" for c in ffsr_cols]
        peers = [_fps(r.get(c)) if c not in r.failed else "failed" for c in PEER_PATHS]
        best_name = f" ({best.label.removeprefix('ffsr ')})" if best else ""
        auto = r.get(r.auto) if r.auto else None
        auto_name = f" ({auto.label.removeprefix('ffsr ')})" if auto and ov else ""
        out.append((r.card.name, f"{w}×{h} → {w * s}×{h * s}", r.frames, *cells, *peers,
                    ratio(auto, ov) + auto_name, ratio(best, ov) + (best_name if ov else ""),
                    ratio(best, onnx)))
    return markdown_table(head, out)


def end_to_end_table(e2e: Sequence[EndToEnd]) -> str:
    out = [(e.model, f"{e.size[0]}×{e.size[1]}", e.frames, f"{e.ffsr_s:.2f}", e.ffsr_path,
            f"{e.peer_s:.2f}", f"{e.peer_s / e.ffsr_s:.2f}×" if e.ffsr_s else "–",
            f"{e.peer_median_s / e.ffsr_median_s:.2f}×" if e.ffsr_median_s else "–",
            fmt(e.psnr_y, 1), e.repeats) for e in e2e]
    return markdown_table(("model", "input", "frames", "ffsr upscale s", "ffsr ran",
                           "vspipe \\| ffmpeg s (vs-mlrt ov)", "vs-mlrt time ÷ ffsr time",
                           "same, medians", "PSNR-Y ffsr vs vs-mlrt output, dB", "rounds"), out)


def startup_table(st: Sequence[Startup]) -> str:
    out = [(s.model, f"{s.size[0]}×{s.size[1]}", f"{s.upscale_s:.2f}", f"{s.bare_s:.2f}",
            f"**{s.overhead_s:.2f}**", s.repeats) for s in st]
    return markdown_table(("model", "2-frame clip", "ffsr upscale s", "bare ffmpeg s",
                           "overhead s (target ≤ 0.5)", "best of"), out)


def failures(rows: Sequence[PeerRow]) -> list[str]:
    return [f"- {r.card.name} {r.size[0]}×{r.size[1]}, {k}: {v}"
            for r in rows for k, v in r.failed.items()]


def section(tools: bench.Tools, log: Callable[[str], None], frames: int = 40,
            plans: Sequence[tuple[str, Sequence[tuple[int, int]]]] = PLANS,
            backends: Sequence[str] | None = None, whole_job: bool = True,
            repeats: int = 1) -> str:
    """Measure everything and return the markdown section (## heading included)."""
    started = time.monotonic()
    peer = peer_env.ensure(log)
    versions = vsmlrt.peer_versions(peer)
    cards = {c.name: c for c in resolve_cards([m for m, _ in plans], log)}
    autos = {name: auto_column(tools, card, log) for name, card in cards.items()}
    src = source_clip()
    start = SOURCE_START.get(src.name, 0.0)
    rows: list[PeerRow] = []
    e2e: list[EndToEnd] = []
    st: list[Startup] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ffsr-peers-") as tmp_name:
        tmp = Path(tmp_name)
        for model, sizes in plans:
            for w, h in sizes:
                clip = vsmlrt.make_y4m(tools.ffmpeg, src, tmp / f"in_{w}x{h}.y4m", w, h, frames,
                                       start)
                row = PeerRow(cards[model], (w, h), frames, auto=autos[model])
                log(f"peers: {model} {w}×{h}")
                time_row(tools, peer, row, clip, backends, log, repeats)
                rows.append(row)
            if not whole_job:
                continue
            w, h = sizes[0]
            try:
                log(f"peers: ffsr upscale vs vspipe | ffmpeg, {model} {w}×{h}")
                e2e.append(vsmlrt.end_to_end(tools, peer, tmp / f"in_{w}x{h}.y4m", cards[model],
                                             (w, h), frames, tmp, max(repeats, 3)))
                log(f"peers: start-up overhead, {model} {w}×{h}, 2 frames")
                two = bench.make_clip(tools.ffmpeg, src, tmp / f"two_{w}x{h}.mp4", w, h, 2, start)
                st.append(vsmlrt.startup(two, cards[model], (w, h), tmp, max(repeats, 3)))
            except FfsrError as e:
                notes.append(f"- whole-job timing of {model} failed: {e}")
                log(f"    failed: {e}")
    v = versions
    lines = [
        "## Against vs-mlrt and the bare runtimes (issue 9)",
        "",
        f"- Peers: VapourSynth {v['vapoursynth']} (Python {v['python']}, {v['threads']} "
        f"threads), vs-mlrt ov {v['vsov']} (OpenVINO {v['vsov_openvino']}), vs-mlrt ort "
        f"{v['vsort']} (ONNX Runtime {v['vsort_onnxruntime']}), BestSource {v['bestsource']}; "
        f"alone: openvino {v['openvino']}, onnxruntime {v['onnxruntime']} wheels "
        f"(`benchmarks/.venv-vsmlrt`, benchmarks/peers/requirements-vsmlrt.txt).",
        f"- Input: {frames} frames of `{src.name}` from {start:g} s, bicubic to each size, "
        "written once to a y4m that every path reads; every path runs the card's `.onnx`.",
        f"- Took {(time.monotonic() - started) / 60:.1f} min.",
        "",
        "Steady-state fps (start-up and model load excluded: ffsr from ffmpeg's `-progress`, "
        "vs-mlrt from the time each output frame arrives; the runtimes alone time their "
        "inference calls after one warm-up call). *ffsr* columns: one per DNN backend this "
        "ffmpeg has and, for OpenVINO, per precision its `precision` option offers (a "
        "different precision in brackets is what the backend's log says it compiled), with "
        "ffsr's default two OpenVINO streams; *1 stream*: one stream and one request at the "
        "CPU's own precision (both cores on one frame, as vs-mlrt runs), there to test that "
        "default, not counted in *ffsr best*. "
        "*vs-mlrt ov/ort*: `core.ov.Model(clip, network_path, device=\"CPU\")` / "
        "`core.ort.Model(clip, network_path)`, the plugins' defaults (no config, "
        "num_streams left alone), on GRAYS of the Y plane (Y models; chroma bicubic, "
        "YUV420P8 out, as ffsr's graph) or RGBS (RGB models; RGB24 out), frames pulled the way "
        "vspipe pulls them. *OpenVINO alone default*: no properties (the precision it chose "
        "in brackets); *f32*: `INFERENCE_PRECISION_HINT=f32`. Paths run back to back, "
        + ("once each." if repeats <= 1 else f"best of {repeats} interleaved rounds."),
        "",
        throughput_table(rows),
        "",
    ]
    if e2e:
        lines += [
            "Whole job, wall clock, process start to file written: `ffsr upscale in.y4m -m "
            "MODEL -o out.mp4` (its defaults) against `vspipe -c y4m upscale.vpy - | ffmpeg "
            f"-i - {e2e[0].encoder} out.mp4` with vs-mlrt ov and the plain ffmpeg "
            f"(`{tools.plain}`"
            + (", ffsr's own build: no plain ffmpeg on PATH, so vs-mlrt's encoder pays its "
               "heavier start-up" if tools.plain == tools.ffmpeg else "")
            + "). Times are the best of the rounds in the last column, the two run alternately; "
            "the ratio of the median times is there too. The PSNR "
            "between the two outputs shows the peer computes the same picture.",
            "",
            end_to_end_table(e2e),
            "",
        ]
    if st:
        lines += [
            "Start-up: `ffsr upscale` of a 2-frame H.264 clip against the command "
            "`ffsr graph --command` prints for it, run directly (best of 3, interleaved).",
            "",
            startup_table(st),
            "",
        ]
    if fails := failures(rows) + notes:
        lines += ["Paths that failed:", "", *fails, ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=40, help="frames per path (default 40)")
    ap.add_argument("--models", default="", help="comma-separated subset of "
                    + ", ".join(m for m, _ in PLANS))
    ap.add_argument("--sizes", default="", help="only these input sizes, e.g. 640x360,320x180")
    ap.add_argument("--backends", default="", help="only these ffsr backends, e.g. onnx,openvino")
    ap.add_argument("--repeats", type=int, default=1,
                    help="interleaved rounds per row, each path's best kept (default 1)")
    ap.add_argument("--no-whole-job", action="store_true",
                    help="skip the upscale-vs-vspipe and start-up timings")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    sizes = {tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",") if s}
    plans = [(m, tuple(s for s in ss if not sizes or s in sizes)) for m, ss in PLANS
             if not models or m in models]
    plans = [(m, ss) for m, ss in plans if ss]
    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {msg}", file=sys.stderr, flush=True)

    print(section(bench.find_tools(), log, args.frames, plans,
                  [b for b in args.backends.split(",") if b] or None, not args.no_whole_job,
                  args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
