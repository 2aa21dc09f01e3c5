"""Reproduce the CPU benchmark table: `.venv/bin/python benchmarks/run.py`.

Throughput of ffsr against a Python frame pipeline, a PNG round trip, the model alone and
FFmpeg's own scaling, per model x backend x input size; quality (PSNR/SSIM on Y) on
Set5/Set14 and on video clips; peak memory per path; and ffsr against vs-mlrt and
OpenVINO / ONNX Runtime alone (benchmarks/peers, `--peers only|skip`). Writes
benchmarks/results/cpu-<date>.md and .png and prints the markdown. The measurement
functions live in src/ffsr/bench.py (also behind `ffsr bench`); this script only
chooses what to measure, keeps to a time budget and writes the report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from peers import report as peers

from ffsr import bench
from ffsr.bench import Measurement, fmt, markdown_table
from ffsr.evaluate import evaluate, mean_by_method
from ffsr.ffmpeg_build import COMPLETE_MARKER
from ffsr.ffmpeg_tools import capabilities
from ffsr.model_card import ModelCard
from ffsr.paths import SHARED_DATA_DIR, ffmpeg_builds_dir
from ffsr.precision import cpu_has_bf16
from ffsr.upscale_job import resolve_cards

HERE = Path(__file__).resolve().parent
SIZES = ((176, 144), (320, 240), (640, 360), (1280, 720))
SOURCE_CLIP, SOURCE_START = "car-detection_768x432.mp4", 4.0
"""Throughput input: real footage (a car crossing a car park), from 4 s where the car is in view."""
VIDEO_CLIPS = {"carphone_176x144.mp4": 0.0, "realshort_320x240.mp4": 0.0, SOURCE_CLIP: SOURCE_START}
ALL_BACKENDS = ("onnx", "torch", "tensorflow")


@dataclass(frozen=True)
class Plan:
    """Which input sizes a model is timed at: Real-ESRGAN Compact nets cost ~30x ESPCN
    per pixel, so on 2 cores they stop at the sizes that finish in seconds per frame."""

    model: str
    sizes: tuple[tuple[int, int], ...]


PLANS = (
    Plan("espcn", SIZES),
    Plan("srcnn", SIZES),
    Plan("small-grayrealesrx2", SIZES[:2]),
    Plan("realesr-animevideox2v3", SIZES[:2]),
    Plan("realesr-animevideov3", SIZES[:1]),
)


@dataclass
class Row:
    card: ModelCard
    size: tuple[int, int]
    ms: list[Measurement] = field(default_factory=list)
    skipped: str = ""

    def get(self, label: str) -> Measurement | None:
        return next((m for m in self.ms if m.label == label), None)


def machine() -> list[str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor() or "?")
    mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal"))

    def ver(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "not installed"

    return [f"CPU: {cpu}, {os.cpu_count()} cores visible, {mem_kb / 1024**2:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}",
            f"Python {platform.python_version()}, onnxruntime {ver('onnxruntime')}, "
            f"torch {ver('torch')}, tensorflow {ver('tensorflow')}, numpy {ver('numpy')}, "
            f"pillow {ver('pillow')}"]


def ffmpeg_versions(tools: bench.Tools) -> str:
    plain = subprocess.run([str(tools.plain), "-version"], capture_output=True, text=True)
    first = plain.stdout.splitlines()[0] if plain.stdout else "?"
    return (f"ffsr's ffmpeg {capabilities(tools.ffmpeg).version} ({tools.ffmpeg}); "
            f"plain ffmpeg for the Python paths: {first.split(' Copyright')[0]} ({tools.plain})")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_kind() -> str:
    """A results file's suffix: a CPU with bf16 units gives different numbers (OpenVINO runs
    bf16 there) from one without, so both kinds of report are kept side by side."""
    return "-bf16" if cpu_has_bf16() else ""


def side_report(title: str, command: str, minutes: float, load_before: str,
                body: Sequence[str], name: str, write: bool = True) -> str:
    """A results file of a side benchmark (interpolation.py, segments.py): title, machine,
    load, command, then ``body``; printed, and written to results/<name>-<date>[-bf16].md."""
    report = "\n".join([f"# {title}, CPU, {datetime.date.today()}", "",
                        *(f"- {line}" for line in machine()),
                        f"- Load average before / after: {load_before} / {load()}.",
                        f"- Command: `{command}`, took {minutes:.1f} min.", "", *body, ""])
    print(report)
    if write:
        out = HERE / "results" / f"{name}-{datetime.date.today()}{cpu_kind()}.md"
        out.write_text(report)
        print(f"wrote {out}", file=sys.stderr)
    return report


def time_row(tools: bench.Tools, row: Row, clip: Path, path_s: float, deadline: float,
             log: Callable[[str], None]) -> None:
    """Ceiling first (it sets the frame count), then every path on the same frames. The
    paths the targets compare (ffsr onnx, Python pipeline, ceiling) run twice, interleaved
    with the rest, and keep their best run: other load on a shared machine only slows."""
    card = row.card
    probe_case = bench.make_case(tools, clip, card, 2)
    probe = bench.measure_ceiling(tools, probe_case, min_seconds=min(2.0, path_s))
    frames = bench.frames_for(probe.fps, path_s)
    backends = [b for b in ALL_BACKENDS if b in card.files]
    # per path: the frames at the model's speed plus ~2.5 s of start-up; torch is ~3x slower
    per_path = frames / probe.fps + 2.5
    estimate = per_path * (len(backends) + 6) + 2 * frames / probe.fps
    if time.monotonic() + estimate > deadline:
        row.skipped = f"skipped: ~{estimate:.0f}s left no room in the time budget"
        log(f"  {row.skipped}")
        return
    case = bench.make_case(tools, clip, card, frames)
    sample = card.name == "espcn" and row.size == SIZES[-1]

    def core() -> list[Measurement]:
        log(f"  ffsr onnx, python pipeline, ceiling ({frames} frames)")
        return [bench.measure_ffsr(tools, case, "onnx", sample_rss=sample),
                bench.measure_python_pipeline(tools, case), bench.measure_ceiling(tools, case)]

    rounds = [core()]
    for b in backends[1:]:
        log(f"  ffsr {b}")
        row.ms.append(bench.measure_ffsr(tools, case, b))
    log("  png round trip")
    row.ms.append(bench.measure_png_roundtrip(tools, case))
    if time.monotonic() + 3 * per_path < deadline:
        rounds.append(core())
    runs = [[r[i] for r in rounds] for i in range(3)]
    runs[2].append(probe)
    row.ms += [bench.best_of(r) for r in runs]


def onnx_only_build() -> Path | None:
    """A finished CPU build with only the ONNX backend in ffsr's cache, if any (made by
    `ffsr build-ffmpeg --backends onnx`): the memory target is measured with it too."""
    root = ffmpeg_builds_dir()
    for marker in sorted(root.glob(f"*/{COMPLETE_MARKER}"), key=lambda p: -p.stat().st_mtime):
        info = json.loads(marker.read_text())
        if info.get("backends") == ["onnx"] and not info.get("cuda"):
            return marker.parent / "bin" / "ffmpeg"
    return None


def upscale_peak(clip: Path, tmp: Path, frames: int, ffmpeg: Path | None = None) -> Measurement:
    """`ffsr upscale` as a user runs it (CLI, libx264 .mp4): its peak memory target.
    ``ffmpeg``: another ffsr build to run it with (FFSR_FFMPEG)."""
    out = tmp / "espcn_x2.mp4"
    env = {**os.environ, **({"FFSR_FFMPEG": str(ffmpeg)} if ffmpeg else {})}
    res = bench.run_measured([sys.executable, "-m", "ffsr", "upscale", str(clip), "-m", "espcn",
                              "-o", str(out), "--frames", str(frames), "--overwrite"], env=env)
    if res.returncode != 0:
        raise RuntimeError(f"ffsr upscale failed: {res.log[-500:]}")
    return Measurement("ffsr upscale", "onnx", frames, res.wall_s, None, res.maxrss_mb,
                       "CLI + ffmpeg, libx264 .mp4")


def throughput_table(rows: Sequence[Row], floors: dict[tuple[tuple[int, int], int], Measurement],
                     ) -> str:
    head = ("model", "input → output", "frames", "ffsr onnx", "ffsr torch", "ffsr tensorflow",
            "Python pipeline", "PNG round trip", "ceiling (ORT alone)", "ffsr onnx / ceiling",
            "ffsr ÷ Python", "ffsr ÷ PNG", "lanczos floor")
    out = []
    for r in rows:
        w, h = r.size
        s = r.card.scale
        size = f"{w}×{h} → {w * s}×{h * s}"
        if r.skipped:
            out.append((r.card.name, size, "–", r.skipped, *("",) * 9))
            continue
        summ = bench.summarize(r.ms)
        ffsr = r.get("ffsr onnx")
        floor = floors.get((r.size, s))

        def fps(label: str, r: Row = r) -> str:
            m = r.get(label)
            return fmt(m.fps, 2 if m and m.fps < 10 else 1) if m else "n/a"

        png = r.get("png round trip")
        out.append((r.card.name, size, str(ffsr.frames) if ffsr else "–", fps("ffsr onnx"),
                    fps("ffsr torch"), fps("ffsr tensorflow"), fps("python pipeline"),
                    fmt(png.wall_fps, 2) if png else "–", fps("ceiling"), fmt(summ.of_ceiling, 2),
                    fmt(summ.vs_python, 2, "×"), fmt(summ.vs_png, 1, "×"),
                    fmt(floor.fps, 0) if floor else "–"))
    return markdown_table(head, out)


def memory_table(rows: Sequence[Row]) -> str:
    labels = ("ffsr onnx", "ffsr torch", "ffsr tensorflow", "python pipeline", "png round trip",
              "ceiling")
    out = []
    for r in rows:
        if r.skipped:
            continue
        w, h = r.size
        cells = [fmt(m.peak_mb, 0) if (m := r.get(lab)) else "n/a" for lab in labels]
        out.append((r.card.name, f"{w}×{h}", *cells))
    return markdown_table(("model", "input", *labels), out)


def quality_tables(tools: bench.Tools, cards: Sequence[ModelCard],
                   log: Callable[[str], None]) -> tuple[str, str]:
    images = {s: sorted((SHARED_DATA_DIR / "images" / s).glob("*.png")) for s in ("Set5", "Set14")}
    lines = []
    for scale in sorted({c.scale for c in cards}):
        group = [c for c in cards if c.scale == scale]
        means = {}
        for name, imgs in images.items():
            log(f"quality x{scale} on {name} ({len(imgs)} images, {len(group)} models)")
            means[name] = mean_by_method(evaluate(tools.ffmpeg, tools.ffprobe, imgs, scale, group))
        for method in means["Set5"]:
            p5, s5 = means["Set5"][method]
            p14, s14 = means["Set14"][method]
            lines.append((f"x{scale}", method, f"{p5:.2f}", f"{s5:.4f}", f"{p14:.2f}", f"{s14:.4f}"))
    images_table = markdown_table(("scale", "method", "Set5 PSNR-Y dB", "Set5 SSIM-Y",
                                   "Set14 PSNR-Y dB", "Set14 SSIM-Y"), lines)
    vlines = []
    for clip_name, start in VIDEO_CLIPS.items():
        clip = SHARED_DATA_DIR / "clips" / clip_name
        for scale in sorted({c.scale for c in cards}):
            group = [c for c in cards if c.scale == scale]
            log(f"video quality x{scale} on {clip_name}")
            for v in bench.video_quality(tools.ffmpeg, tools.ffprobe, clip, scale, group,
                                         frames=8, start=start):
                vlines.append((v.clip, f"x{v.scale}", v.method, v.frames, f"{v.psnr_y:.2f}",
                               f"{v.ssim_y:.4f}"))
    video_table = markdown_table(("clip", "scale", "method", "frames", "PSNR-Y dB", "SSIM-Y"),
                                 vlines)
    return images_table, video_table


def plot(rows: Sequence[Row], floors: dict[tuple[tuple[int, int], int], Measurement],
         out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.card.name for r in rows if r.ms))
    ncols = min(3, len(models))
    nrows = -(-len(models) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(models):]:
        ax.set_visible(False)
    styles = {"ffsr onnx": "C0-o", "ffsr torch": "C1-s", "ffsr tensorflow": "C2-^",
              "python pipeline": "C3--o", "png round trip": "C4:o", "ceiling": "k--x",
              "lanczos": "C7-.d"}
    for ax, name in zip(flat, models, strict=False):
        sel = [r for r in rows if r.card.name == name and r.ms]
        px = [r.size[0] * r.size[1] for r in sel]
        for label, style in styles.items():
            if label == "lanczos":
                ys = [floors[(r.size, r.card.scale)].fps if (r.size, r.card.scale) in floors
                      else None for r in sel]
            else:
                ys = [(m.wall_fps if m.path == "png round trip" else m.fps)
                      if (m := r.get(label)) else None for r in sel]
            pts = [(x, y) for x, y in zip(px, ys, strict=True) if y]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(px, [f"{w}×{h}" for w, h in (r.size for r in sel)], rotation=30,
                      fontsize=7)
        ax.minorticks_off()
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("fps")
        ax.grid(alpha=0.3)
    flat[0].legend(fontsize=7)
    fig.suptitle("ffsr vs the alternatives (CPU, higher is better)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def targets(rows: Sequence[Row], peak: Measurement, lean: Measurement | None,
            baseline: Measurement) -> str:
    done = [r for r in rows if not r.skipped and r.get("ffsr onnx")]
    fr = [(bench.summarize(r.ms).of_ceiling or 0, r) for r in done]
    png = [(bench.summarize(r.ms).vs_png or 0, r) for r in done]
    lo_c, lo_cr = min(fr, key=lambda t: t[0])
    lo_p, lo_pr = min(png, key=lambda t: t[0])
    hi_p = max(t[0] for t in png)

    def where(r: Row) -> str:
        return f"{r.card.name} {r.size[0]}×{r.size[1]}"

    model_share = []
    for r in done:
        m = r.get("png round trip")
        if m and m.phases:
            work = sum(v for _, v in m.phases)
            model_share.append(dict(m.phases)["model"] / work if work else 0)
    share = sum(model_share) / len(model_share) if model_share else 0
    big = next((r for r in done if r.card.name == "espcn" and r.size == SIZES[-1]), None)
    ceil_m = big.get("ceiling") if big else None
    ceil_mb = f"{ceil_m.peak_mb:.0f} MB" if ceil_m else "(not timed)"
    ok = "**met**"
    miss = "**missed**"
    below = [where(r) for f, r in fr if f < 0.95]
    why_ceiling = (" Below 0.95: " + ", ".join(below) + ". What ffsr adds to the model is "
                   "FFmpeg's per-frame work, serial with inference: 8-bit↔float conversion "
                   "and, for Y models, chroma scaling with swscale contexts made anew every "
                   "frame, all single-threaded (docs/ffmpeg-dnn.md). It weighs most where the "
                   "model is cheapest per pixel; reusing the contexts and threading the "
                   "conversions in FFmpeg, or overlapping them with inference (an async "
                   "request in the ONNX backend), would close it. Rows of a few frames also "
                   "carry run-to-run noise from other load.") if below else ""
    return "\n".join([
        f"- ffsr (onnx) ≥ 0.95 of the model-only ceiling at every size: "
        f"{ok if lo_c >= 0.95 else miss} — lowest {lo_c:.2f} ({where(lo_cr)}); "
        f"{sum(1 for f, _ in fr if f >= 0.95)} of {len(fr)} rows at or above 0.95.{why_ceiling}",
        f"- ffsr ≥ 20× the PNG round trip: {ok if lo_p >= 20 else miss} — "
        f"{lo_p:.1f}× to {hi_p:.1f}× ({where(lo_pr)} lowest). The model itself is "
        f"{min(model_share, default=0):.0%}–{max(model_share, default=0):.0%} (mean {share:.0%}) "
        "of the PNG round trip's work here, and ffsr runs the same ONNX Runtime model, so "
        f"on this CPU ffsr can be at most ~{1 / share if share else 0:.1f}× faster on average "
        "however little else it does. The ratio grows only where the model gets cheap "
        "against PNG encode/decode: on a GPU, or with a quantised/fp16 or smaller model.",
        f"- Peak memory of `ffsr upscale -m espcn` on 1280×720 (→ .mp4, libx264) under "
        f"1.5 GB: {ok if peak.peak_mb < 1536 else miss} with the default build, "
        f"{peak.peak_mb:.0f} MB"
        + (f"; {ok if lean.peak_mb < 1536 else miss} with an ONNX-only build, "
           f"{lean.peak_mb:.0f} MB" if lean else "")
        + f". Two things dominate: ONNX Runtime's activations for ESPCN at 1280×720 (its "
        "64-channel first layer alone is 236 MB a frame; the ceiling process, ORT alone, "
        f"peaks at {ceil_mb}), and the TensorFlow and LibTorch libraries linked into the "
        f"default build, {baseline.peak_mb:.0f} MB resident before any frame "
        "(`ffmpeg -version`). An ONNX-only build removes the second; ORT's memory could be "
        "cut further with tiling large frames.",
    ])


def peers_only(args: argparse.Namespace, tools: bench.Tools, measure: Callable[[], str],
               started: float, log: Callable[[str], None]) -> int:
    """`--peers only`: the vs-mlrt comparison alone, in its own results file."""
    load_before = load()
    text = measure()
    date = datetime.date.today().isoformat()
    flags = " --quick" if args.quick else ""
    flags += f" --peer-repeats {args.peer_repeats}" if args.peer_repeats != 1 else ""
    report = "\n".join([
        f"# ffsr against vs-mlrt, CPU, {date}", "",
        *[f"- {line}" for line in machine()],
        f"- {ffmpeg_versions(tools)}",
        f"- Load average before / after: {load_before} / {load()}.",
        f"- Command: `.venv/bin/python benchmarks/run.py --peers only{flags}`, took "
        f"{(time.monotonic() - started) / 60:.1f} min.", "",
        text,
    ])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cpu-peers-{date}{cpu_kind()}{'-quick' if args.quick else ''}.md"
    path.write_text(report)
    print(report)
    log(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-min", type=float, default=14.0,
                    help="stop timing new rows when this much wall time is used (default 14)")
    ap.add_argument("--path-seconds", type=float, default=2.5,
                    help="about how long each path runs per row (sets the frame count)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 176×144 only, ESPCN only, no Set14/video quality")
    ap.add_argument("--peers", choices=("with", "only", "skip"), default="with",
                    help="ffsr against vs-mlrt and OpenVINO/ONNX Runtime alone (issue 9, "
                    "benchmarks/peers; ~15 min, 40 frames a path): with the rest, only it, or not")
    ap.add_argument("--peer-repeats", type=int, default=1,
                    help="interleaved rounds per peer row, best kept (default 1)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    started = time.monotonic()
    deadline = started + args.budget_min * 60

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {msg}", file=sys.stderr, flush=True)

    tools = bench.find_tools()

    def peer_section() -> str:
        if args.quick:  # a smoke run: ESPCN at one size, 4 frames a path
            return peers.section(tools, log, frames=4, plans=peers.QUICK_PLANS)
        return peers.section(tools, log, repeats=args.peer_repeats)

    if args.peers == "only":
        return peers_only(args, tools, peer_section, started, log)
    plans = [Plan("espcn", SIZES[:1])] if args.quick else list(PLANS)
    cards = {c.name: c for c in resolve_cards([p.model for p in plans], log)}
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="ffsr-bench-") as tmp_name:
        tmp = Path(tmp_name)
        clips = {}
        for w, h in {s for p in plans for s in p.sizes}:
            clips[(w, h)] = bench.make_clip(tools.ffmpeg, SHARED_DATA_DIR / "clips" / SOURCE_CLIP,
                                            tmp / f"in_{w}x{h}.mp4", w, h, 60, SOURCE_START)
        if args.quick:
            images_table = video_table = "(skipped: --quick)"
        else:
            images_table, video_table = quality_tables(tools, list(cards.values()), log)
        floors: dict[tuple[tuple[int, int], int], Measurement] = {}
        for size in sorted(clips):
            for scale in sorted({cards[p.model].scale for p in plans if size in p.sizes}):
                log(f"floor lanczos x{scale} {size[0]}×{size[1]}")
                floors[(size, scale)] = bench.measure_scale(tools, clips[size], scale, "lanczos",
                                                            seconds=1.5)
        big = clips.get(SIZES[-1], clips[min(clips)])
        res = bench.run_measured([str(tools.ffmpeg), "-hide_banner", "-version"])
        baseline = Measurement("ffmpeg -version", "", 0, res.wall_s, None, res.maxrss_mb)
        log("peak memory of ffsr upscale (ESPCN x2)")
        peak = upscale_peak(big, tmp, frames=4)
        onnx_only = onnx_only_build()
        lean = upscale_peak(big, tmp, 4, onnx_only) if onnx_only else None
        rows = [Row(cards[p.model], s) for p in plans for s in p.sizes]
        # ESPCN at every size first (the targets are judged there), then the rest from the
        # smallest size up, so a tight budget drops the most expensive rows.
        order = sorted(rows, key=lambda r: (r.card.name != "espcn", r.size[0] * r.size[1]))
        for row in order:
            log(f"{row.card.name} {row.size[0]}×{row.size[1]}")
            time_row(tools, row, clips[row.size], args.path_seconds, deadline, log)
    peer_text = peer_section() if args.peers == "with" else ""
    load_after = load()
    date = datetime.date.today().isoformat()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"cpu-{date}{'-quick' if args.quick else ''}"
    plot(rows, floors, args.out / f"{stem}.png")
    rss = next((m.rss_top for r in rows for m in r.ms if m.rss_top), ())
    rss_text = ", ".join(f"{name} {mb:.0f} MB" for name, mb in rss) or "not sampled"
    elapsed = time.monotonic() - started
    report = "\n".join([
        f"# ffsr CPU benchmark, {date}",
        "",
        *[f"- {line}" for line in machine()],
        f"- {ffmpeg_versions(tools)}",
        f"- Load average before / after: {load_before} / {load_after} (2 cores shared with "
        "other work: anything above ~2 slows every path; paths of a row run back to back, "
        "so ratios within a row are the figures to trust).",
        "- GPU: not measured. No GPU machine was lent to this task (the device tool's status "
        "said none can be started), so the CUDA LibTorch build and the 960×540→x4 / "
        "1920×1080→x2 runs of issue 6 are still to do.",
        f"- Command: `.venv/bin/python benchmarks/run.py{' --quick' if args.quick else ''}`, "
        f"took {elapsed / 60:.1f} min.",
        "",
        "## Throughput (frames per second)",
        "",
        "Input: the first frames of `car-detection_768x432.mp4` scaled to each size (H.264). "
        "All outputs go to `-f null`. fps are steady state: ffsr and the Python pipeline "
        "from the first frame out to the next-to-last, the PNG round trip over its extract "
        "+ per-image PIL/model/save + reassemble steps, all without process start-up and "
        "model load. *Ceiling*: ONNX Runtime alone on preloaded frames, the same .onnx. "
        "ffsr onnx, Python pipeline and ceiling: best of two interleaved runs; the other "
        "paths: one run. *ffsr torch* on Y models runs the RGB-wrapped net LibTorch needs; "
        "*n/a*: no TensorFlow graph for Real-ESRGAN models. Real-ESRGAN models are timed "
        "only at the sizes listed (a 640×360 frame takes several seconds through them on "
        "2 cores).",
        "",
        throughput_table(rows, floors),
        "",
        f"![throughput]({stem}.png)",
        "",
        "## Peak resident memory (MB)",
        "",
        "ffsr: the ffmpeg process. Python pipeline: decoder + Python + encoder (concurrent, "
        "summed). PNG round trip: the largest of its sequential processes. Ceiling: the "
        "Python process with a few frames preloaded.",
        "",
        memory_table(rows),
        "",
        f"`ffsr upscale -m espcn` on 1280×720 to .mp4 (libx264, CLI included): "
        f"**{peak.peak_mb:.0f} MB** with the default build (onnx + torch + tensorflow); "
        + (f"**{lean.peak_mb:.0f} MB** with an ONNX-only build (`ffsr build-ffmpeg --backends "
           "onnx`). " if lean else "an ONNX-only build (`ffsr build-ffmpeg --backends onnx`) "
           "is measured too when the cache has one. ")
        + f"Largest resident mappings of ffsr's ffmpeg at 1280×720 (onnx backend, -f null): "
        f"{rss_text}; the same ffmpeg at start-up alone: {baseline.peak_mb:.0f} MB "
        "(`ffmpeg -version`).",
        "",
        "## Quality (Y channel, DESIGN.md §5)",
        "",
        "Still images: crop to a multiple of the scale, FFmpeg bicubic downscale, upscale, "
        "PSNR/SSIM on BT.601 Y with `scale` pixels shaved (ffsr.evaluate). FFmpeg's bicubic "
        "is not MATLAB's: figures differ from papers by a few tenths of a dB.",
        "",
        images_table,
        "",
        "Video: the first 8 frames, FFmpeg bicubic downscale, upscale, FFmpeg's `psnr` and "
        "`ssim` filters on yuv420p Y (no border shave). VMAF: "
        + ("libvmaf is in this build." if "libvmaf" in capabilities(tools.ffmpeg).filters
           else "not measured, this FFmpeg build has no libvmaf."),
        "",
        video_table,
        "",
        peer_text,
        "## Targets",
        "",
        targets(rows, peak, lean, baseline) if any(r.ms for r in rows) else "(no rows timed)",
        "",
    ])
    (args.out / f"{stem}.md").write_text(report)
    print(report)
    log(f"wrote {args.out / (stem + '.md')} in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
