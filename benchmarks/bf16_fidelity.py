"""bf16 against f32 on every shared clip (issue 9): the fidelity price of OpenVINO's bf16.

On a CPU with bf16 units `--precision auto` runs OpenVINO models in bf16. This runs the
command a user types, `ffsr upscale CLIP -m MODEL --backend openvino --precision bf16|f32`,
on the first frames of every clip in `../shared/data/clips`, and compares the two outputs
with FFmpeg's `psnr` filter (all planes: Y, U, V or R, G, B; per frame). The bar is 50 dB
on every clip.

    .venv/bin/python benchmarks/bf16_fidelity.py [--frames 8] [--models espcn,realesr-animevideov3]
"""
from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ffsr.paths import SHARED_DATA_DIR
from ffsr.precision import cpu_has_bf16, cpuinfo

HERE = Path(__file__).resolve().parent
CLIPS = SHARED_DATA_DIR / "clips"
FFSR = Path(sys.executable).with_name("ffsr")
PSNR_LINE = re.compile(r"PSNR (?:\w+:\S+ )+average:(\S+) min:\S+ max:\S+")  # y u v or r g b
FRAME_PSNR = re.compile(r"psnr_avg:(\S+)")


def upscale(clip: Path, model: str, precision: str, frames: int, out: Path) -> float:
    """Runs ffsr as a user does; returns the wall time."""
    started = time.monotonic()
    proc = subprocess.run([str(FFSR), "upscale", str(clip), "-m", model, "--backend", "openvino",
                           "--precision", precision, "--frames", str(frames), "--encoder", "ffv1",
                           "--overwrite", "-o", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ffsr upscale {clip.name} -m {model} --precision {precision} failed:\n"
                         f"{proc.stderr[-1500:]}")
    return time.monotonic() - started


def psnr(ffmpeg: str, a: Path, b: Path, stats: Path) -> tuple[float, float]:
    """Mean PSNR over all planes and frames, and the worst frame's."""
    proc = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b),
                           "-lavfi", f"[0:v][1:v]psnr=stats_file={stats}", "-f", "null", "-"],
                          capture_output=True, text=True)
    match = PSNR_LINE.search(proc.stderr)
    if proc.returncode != 0 or not match:
        raise SystemExit(f"psnr of {a.name} against {b.name} failed:\n{proc.stderr[-1500:]}")
    per_frame = [float(v) for v in FRAME_PSNR.findall(stats.read_text())]
    return float(match[1]), min(per_frame)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    ap.add_argument("--models", default="espcn,realesr-animevideov3")
    ap.add_argument("--ffmpeg", default="/usr/bin/ffmpeg", help="ffmpeg for the psnr filter")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    clips = sorted(p for p in CLIPS.iterdir() if p.suffix in {".mp4", ".gif", ".mkv", ".y4m"})
    rows = []
    with tempfile.TemporaryDirectory(prefix="ffsr-bf16-") as tmp_name:
        tmp = Path(tmp_name)
        for model in args.models.split(","):
            for clip in clips:
                seconds = {}
                for precision in ("f32", "bf16"):
                    seconds[precision] = upscale(clip, model, precision, args.frames,
                                                 tmp / f"{precision}.mkv")
                mean, worst = psnr(args.ffmpeg, tmp / "bf16.mkv", tmp / "f32.mkv", tmp / "s.log")
                rows.append((model, clip.name, args.frames, mean, worst,
                             seconds["f32"], seconds["bf16"]))
                print(f"{model} {clip.name}: {mean:.2f} dB (worst frame {worst:.2f})",
                      file=sys.stderr, flush=True)
    lines = [f"# bf16 against f32 through ffsr, {datetime.date.today().isoformat()}", "",
             f"- CPU: {cpuinfo().get('model name', '?')}, bf16 units: "
             f"{'yes' if cpu_has_bf16() else 'no'}",
             "- Command: `.venv/bin/python benchmarks/bf16_fidelity.py "
             f"--frames {args.frames} --models {args.models}`", "",
             "Each row: `ffsr upscale CLIP -m MODEL --backend openvino --precision bf16` against "
             "the same with `--precision f32` (FFV1 out), PSNR over all planes by FFmpeg's "
             "`psnr` filter; the bar is 50 dB.", "",
             "| model | clip | frames | PSNR mean dB | worst frame dB | f32 s | bf16 s | ≥ 50 dB |",
             "|---|---|---|---|---|---|---|---|"]
    for model, clip_name, frames, mean, worst, f32_s, bf16_s in rows:
        lines.append(f"| {model} | {clip_name} | {frames} | {mean:.2f} | {worst:.2f} | "
                     f"{f32_s:.1f} | {bf16_s:.1f} | {'yes' if worst >= 50 else '**no**'} |")
    report = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cpu-bf16-fidelity-{datetime.date.today().isoformat()}.md"
    path.write_text(report)
    print(report)
    return 0 if all(row[4] >= 50 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
