"""What segmenting costs (issue 13): `ffsr upscale` in one process against the same command
with `--segments N`, on one worker and on two, in one run:
`.venv/bin/python benchmarks/segments.py [--minutes 2] [--segments 4]`.

The input is a synthetic clip the script makes (testsrc2 with a sine tone, H.264 with
B-frames and open GOPs, AAC), so the run needs no data; the model is ESPCN x2 on the
default backend. Each path is the CLI a user types, timed from process start to the file
written; the segmented outputs are checked frame for frame (framemd5) against the
one-process output. Prints a markdown table and writes
benchmarks/results/cpu-segments-<date>[-bf16].md.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import load, side_report

from ffsr.bench import find_tools, markdown_table

SIZE, RATE, GOP = (320, 180), 25, 50


def make_clip(ffmpeg: Path, dst: Path, minutes: float) -> Path:
    seconds = round(minutes * 60)
    subprocess.run([str(ffmpeg), "-v", "error", "-y", "-nostdin",
                    "-f", "lavfi", "-i", f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate={RATE}:"
                                        f"duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", str(GOP),
                    "-x264-params", "open-gop=1", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "96k", str(dst)], check=True)
    return dst


def children_cpu() -> float:
    """CPU seconds (user + system) of every waited-for descendant so far: ffsr and its ffmpegs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_upscale(clip: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of the command (CPU: less noisy than wall on a shared machine)."""
    argv = [sys.executable, "-m", "ffsr", "upscale", str(clip), "-m", "espcn", "-o", str(out),
            "--overwrite", *extra]
    started, cpu = time.monotonic(), children_cpu()
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.strip()[-400:]}")
    return time.monotonic() - started, children_cpu() - cpu


def video_md5(ffmpeg: Path, path: Path) -> list[str]:
    """Per-frame hashes and timestamps of the video stream (framemd5, header dropped)."""
    out = subprocess.run([str(ffmpeg), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v",
                          "-f", "framemd5", "-"], capture_output=True, text=True, check=True)
    return [ln for ln in out.stdout.splitlines() if not ln.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="length of the synthetic clip")
    ap.add_argument("--segments", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best kept")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    tools = find_tools()
    started, load_before = time.monotonic(), load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ffsr-seg-bench-") as tmp_name:
        tmp = Path(tmp_name)
        clip = make_clip(tools.ffmpeg, tmp / "clip.mp4", args.minutes)
        one = tmp / "one.mp4"
        paths: dict[str, list[str]] = {"one process": []}
        paths.update({f"--segments {args.segments} --jobs {j}":
                      ["--segments", str(args.segments), "--jobs", str(j)] for j in (1, 2)})
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        same: dict[str, bool] = {}
        for r in range(args.rounds):  # interleaved; the best of each kept (load only slows)
            for name, extra in paths.items():
                out = one if not extra else tmp / "seg.mp4"
                wall, used = timed_upscale(clip, out, extra)
                best[name] = min(best.get(name, wall), wall)
                cpu[name] = min(cpu.get(name, used), used)
                if not extra and r == 0:
                    want = video_md5(tools.ffmpeg, one)
                elif extra:
                    same[name] = same.get(name, True) and video_md5(tools.ffmpeg, out) == want
                print(f"round {r + 1}, {name}: {wall:.1f}s, {used:.1f} CPU-s", file=sys.stderr)
        base, base_cpu = best["one process"], cpu["one process"]
        rows.append(("one process", "–", f"{base:.1f}", "–", f"{base_cpu:.1f}", "–",
                     f"{len(want)}"))
        for name, extra in list(paths.items())[1:]:
            wall, used = best[name], cpu[name]
            rows.append((name, extra[-1], f"{wall:.1f}", f"{(wall / base - 1) * 100:+.1f} %",
                         f"{used:.1f}", f"{(used / base_cpu - 1) * 100:+.1f} %",
                         f"{len(want)}, {'identical' if same[name] else 'DIFFERENT'}"))
    took = (time.monotonic() - started) / 60
    side_report("Segments against one process",
                f".venv/bin/python benchmarks/segments.py --minutes {args.minutes:g} "
                f"--segments {args.segments} --rounds {args.rounds}", took, load_before, [
        f"`ffsr upscale clip.mp4 -m espcn -o out.mp4` on a {args.minutes:g}-minute synthetic "
        f"{SIZE[0]}×{SIZE[1]} {RATE} fps H.264 clip (B-frames, open GOPs of {GOP}, AAC), wall "
        "time from process start to file written and CPU time (user + system, ffsr and its "
        "ffmpegs), against the same command with `--segments`; frames: count, and whether "
        "every frame and timestamp equals the one-process output (framemd5). Best of "
        f"{args.rounds} interleaved rounds per path. ESPCN runs on the backend `--backend auto` "
        "measured fastest here. With one worker the run cuts the segments (lossless HuffYUV) "
        "from a second output of its own graph (segments.checkpoint); with two, workers write "
        "them and the join streams them into one encode while the workers run.", "",
        markdown_table(["run", "workers", "wall s", "against one process", "CPU s",
                        "CPU against one process", "frames"], rows)],
                "cpu-segments", not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
