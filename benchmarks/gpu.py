"""GPU benchmark: ffsr end to end (decode → model on the GPU → NVENC encode, one ffmpeg
process) against the model alone in PyTorch on the same GPU, for the two figures ffsr aims
at: realesr-animevideov3 x4 960×540 → 3840×2160 and ESPCN x2 1920×1080 → 3840×2160.

    .venv/bin/python benchmarks/gpu.py                       # native (ffsr's ffmpeg built --cuda)
    .venv/bin/python benchmarks/gpu.py --runtime docker      # inside ffsr:<version>-cuda
    .venv/bin/python benchmarks/gpu.py --device cpu          # dry run: same code, small frames

Per case and backend (onnx, torch): steady-state fps (first frame out to the last, start-up
excluded), whole-run fps, and peak GPU memory above idle (nvidia-smi polled every 0.2 s).
Without a usable GPU it prints one line saying why and exits 2. Results go to
benchmarks/results/gpu-<date>.md (``--out`` elsewhere). See docs/gpu.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = (("realesr-animevideov3", 960, 540), ("espcn", 1920, 1080))
DRY_RUN_DIVISOR = 10
"""--device cpu shrinks every frame size by this much (96×54, 192×108): quick on 2 cores."""
GPU_BACKENDS = ("onnx", "torch")
SOURCE_CLIP = "car-detection_768x432.mp4"
POLL_S = 0.2


@dataclass
class Row:
    model: str
    size: str
    path: str
    frames: int = 0
    steady_fps: float | None = None
    wall_fps: float | None = None
    gpu_mib: int | None = None
    note: str = ""


@dataclass
class MemoryPoller:
    """Peak of ``nvidia-smi --query-gpu=memory.used`` over a run, minus the idle value."""

    gpu: int = 0
    idle: int = 0
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def read(self) -> int | None:
        out = subprocess.run(["nvidia-smi", f"--id={self.gpu}", "--query-gpu=memory.used",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True)
        values = parse_memory_used(out.stdout)
        return values[0] if values else None

    def __enter__(self) -> MemoryPoller:
        self.idle = self.read() or 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            if (v := self.read()) is not None:
                self.samples.append(v)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def peak_mib(self) -> int | None:
        return max(self.samples) - self.idle if self.samples else None


def parse_memory_used(text: str) -> list[int]:
    """MiB values from ``nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits``."""
    return [int(v) for v in (ln.strip() for ln in text.splitlines()) if v.isdigit()]


def fail(message: str) -> None:
    """The one line a machine that cannot run the benchmark gets, and a non-zero exit."""
    print(f"benchmarks/gpu.py: {message}", file=sys.stderr)
    sys.exit(2)


def check_gpu(args: argparse.Namespace) -> None:
    from ffsr.errors import FfsrError

    if args.device != "cuda":
        return
    try:
        if args.runtime == "docker":
            from ffsr.docker_gpu import require_docker_gpu

            require_docker_gpu(args.image, "cuda", args.encoder)
        else:
            from ffsr.gpu import require_local_gpu

            require_local_gpu("cuda", args.encoder)
    except FfsrError as e:
        fail(f"no usable GPU: {e.message}")


def make_input(src: Path | None, dst: Path, width: int, height: int, frames: int) -> Path:
    """An H.264 input of the case's size: real footage when the shared clip is there."""
    from ffsr.bench import check_run, run_measured
    from ffsr.ffmpeg_tools import choose_ffmpeg

    ffmpeg = str(choose_ffmpeg().ffmpeg)
    source = ["-i", str(src)] if src else ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25"]
    argv = [ffmpeg, "-v", "error", "-y", "-nostdin", *source, "-an",
            "-vf", f"scale={width}:{height}:flags=bicubic,format=yuv420p", "-frames:v", str(frames),
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", str(dst)]
    check_run(run_measured(argv), f"making {dst.name}")
    return dst


def run_ffsr(args: argparse.Namespace, model: str, clip: Path, out: Path, backend: str,
             encoder: str) -> Row:
    """One `ffsr upscale` (the library call), with -stats_period 0.1 for the steady state."""
    from ffsr.bench import steady_fps
    from ffsr.upscale_job import UpscaleRequest, plan_upscale, run_upscale

    req = UpscaleRequest(input=clip, models=[model], output=out, backend=backend,
                         device=args.device, encoder=encoder, overwrite=True, runtime=args.runtime,
                         image=args.image, preset="ultrafast" if encoder == "libx264" else None)
    plan = plan_upscale(req)
    plan.argv[1:1] = ["-stats_period", "0.1"]
    samples: list[tuple[float, int]] = []
    poller = MemoryPoller(args.gpu) if args.device == "cuda" else None
    started = time.monotonic()
    if poller:
        with poller:
            result = run_upscale(plan, lambda u: samples.append((time.monotonic(), u.frame)))
    else:
        result = run_upscale(plan, lambda u: samples.append((time.monotonic(), u.frame)))
    wall = time.monotonic() - started
    size = f"{plan.info.width}×{plan.info.height}"
    return Row(model, size, f"ffsr {backend} → {encoder}", result.frames, steady_fps(samples),
               result.frames / wall if wall > 0 else None, poller.peak_mib if poller else None)


def model_alone(pt: Path, device: str, width: int, height: int, iters: int) -> dict[str, float]:
    """The TorchScript file ffsr's torch backend loads, run by PyTorch on frames already on
    the device (no decode, no conversions, no encode): the model's own speed."""
    import torch

    module = torch.jit.load(str(pt), map_location=device).eval()
    x = torch.rand(1, 3, height, width, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        for _ in range(3):  # TorchScript's profiling executor optimises on the third call
            module(x)
        sync()
        started = time.perf_counter()
        for _ in range(iters):
            module(x)
        sync()
        seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
    return {"fps": iters / seconds, "peak_mib": peak}


def run_model_alone(args: argparse.Namespace, pt: Path, width: int, height: int) -> dict[str, float]:
    """In this Python, or inside the image for --runtime docker (same GPU, the image's torch)."""
    if args.runtime != "docker":
        return model_alone(pt, args.device, width, height, args.iters)
    from ffsr.image import PREFIX, default_tag
    from ffsr.runtime import Mount, run_container

    spec = json.dumps({"pt": f"/model/{pt.name}", "device": args.device, "width": width,
                       "height": height, "iters": args.iters})
    out: list[str] = []
    rc, err = run_container(args.image or default_tag("cuda"),
                            [f"{PREFIX}/venv/bin/python", "/bench/gpu.py", "--model-alone", spec],
                            [Mount(HERE, "/bench", True), Mount(pt.parent, "/model", True)],
                            gpu=args.device == "cuda", on_stdout=out.extend)
    if rc != 0:
        raise RuntimeError(f"model alone in the image failed: {err.strip()[-300:]}")
    return dict(json.loads(out[-1]))


def encoder_for(args: argparse.Namespace) -> tuple[str, str]:
    """(encoder, note): NVENC on a GPU when it opens (H100/H200 have no NVENC), else libx264."""
    if args.device != "cuda":
        return "libx264", "dry run on the CPU: libx264 ultrafast"
    if args.encoder != "auto":
        return args.encoder, ""
    from ffsr.gpu import host_gpus, nvenc_failure
    from ffsr.gpu_report import nvenc_argv

    if args.runtime == "docker":
        from ffsr.image import default_tag
        from ffsr.runtime import run_container

        rc, log = run_container(args.image or default_tag("cuda"), nvenc_argv("ffmpeg", "hevc_nvenc"),
                                [], gpu=True)
    else:
        from ffsr.ffmpeg_tools import choose_ffmpeg

        proc = subprocess.run(nvenc_argv(str(choose_ffmpeg().ffmpeg), "hevc_nvenc"),
                              capture_output=True, text=True)
        rc, log = proc.returncode, proc.stderr
    if rc == 0:
        return "hevc_nvenc", ""
    gpu = host_gpus().gpus[0].name
    return "libx264", f"NVENC does not open on {gpu} ({nvenc_failure(log) or 'see log'}): libx264 ultrafast"


def markdown(rows: Sequence[Row]) -> str:
    def f(x: float | None) -> str:
        return "—" if x is None else f"{x:.1f}"

    lines = ["| model | input | path | frames | steady fps | whole-run fps | GPU MiB | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mib = "—" if r.gpu_mib is None else str(r.gpu_mib)
        lines.append(f"| {r.model} | {r.size} | {r.path} | {r.frames} | {f(r.steady_fps)} | "
                     f"{f(r.wall_fps)} | {mib} | {r.note} |")
    return "\n".join(lines)


def benchmark(args: argparse.Namespace) -> list[Row]:
    from ffsr.ffmpeg_tools import capabilities, choose_ffmpeg
    from ffsr.paths import SHARED_DATA_DIR
    from ffsr.upscale_job import resolve_cards

    def has(backend: str) -> bool:
        """Whether the ffmpeg `ffsr upscale --backend B` would pick has B (FFSR_FFMPEG first)."""
        return backend in capabilities(choose_ffmpeg((backend,)).ffmpeg).dnn_backends

    divisor = DRY_RUN_DIVISOR if args.device == "cpu" else 1
    src = SHARED_DATA_DIR / "clips" / SOURCE_CLIP
    encoder, note = encoder_for(args)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ffsr-gpu-bench-") as tmp:
        for model, w, h in CASES:
            if args.models and model not in args.models:
                continue
            width, height = w // divisor, h // divisor
            card = resolve_cards([model], log=lambda m: print(m, file=sys.stderr))[0]
            clip = make_input(src if src.is_file() else None, Path(tmp) / f"{model}.mp4", width, height,
                              args.frames)
            for backend in GPU_BACKENDS:
                if backend not in card.files or not has(backend):
                    print(f"{model}: no {backend} backend in ffmpeg or model, skipped", file=sys.stderr)
                    continue
                print(f"{model} {width}×{height} ffsr {backend} …", file=sys.stderr)
                row = run_ffsr(args, model, clip, Path(tmp) / f"{model}-{backend}.mp4", backend, encoder)
                row.note = note
                rows.append(row)
            if "torch" in card.files:
                print(f"{model} {width}×{height} model alone (PyTorch) …", file=sys.stderr)
                alone = run_model_alone(args, card.path_for("torch"), width, height)
                rows.append(Row(model, f"{width}×{height}", "model alone, PyTorch fp32", args.iters,
                                alone["fps"], None, int(alone["peak_mib"]) if args.device == "cuda" else None,
                                "torch.cuda.max_memory_allocated" if args.device == "cuda" else ""))
    return rows


def report(args: argparse.Namespace, rows: Sequence[Row]) -> str:
    from ffsr.gpu import host_gpus

    host = host_gpus()
    gpu = "; ".join(f"{g.name} ({g.memory_mib} MiB), driver {g.driver}" for g in host.gpus) or "none"
    return (f"# ffsr GPU benchmark, {datetime.date.today()}\n\nGPU: {gpu}. Runtime: {args.runtime}"
            f"{' (' + (args.image or 'default cuda image') + ')' if args.runtime == 'docker' else ''}; "
            f"device {args.device}; {args.frames} frames per run.\n\n{markdown(rows)}\n")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cpu: a dry run of the same code path on small frames")
    p.add_argument("--runtime", choices=("local", "docker"), default="local")
    p.add_argument("--image", default=None, help="image for --runtime docker (default: the cuda one)")
    p.add_argument("--encoder", default="auto", help="auto: hevc_nvenc when it opens, else libx264")
    p.add_argument("--frames", type=int, default=None, help="frames per run (240; dry run 3)")
    p.add_argument("--iters", type=int, default=None, help="model-alone iterations (100; dry run 2)")
    p.add_argument("--gpu", type=int, default=0, help="GPU index nvidia-smi polls")
    p.add_argument("--models", nargs="*", help="only these models (default: both cases)")
    p.add_argument("--out", type=Path, default=None, help="report file (GPU default: "
                   "benchmarks/results/gpu-<date>.md; dry run: none)")
    p.add_argument("--model-alone", help=argparse.SUPPRESS)  # worker inside the image
    args = p.parse_args(argv)
    if args.model_alone:
        spec = json.loads(args.model_alone)
        print(json.dumps(model_alone(Path(spec["pt"]), spec["device"], spec["width"], spec["height"],
                                     spec["iters"])))
        return
    dry = args.device == "cpu"
    args.frames = args.frames or (3 if dry else 240)
    args.iters = args.iters or (2 if dry else 100)
    check_gpu(args)
    from ffsr.errors import FfsrError

    try:
        rows = benchmark(args)
    except FfsrError as e:
        fail(str(e))
    text = report(args, rows)
    print(text)
    out = args.out or (None if dry else HERE / "results" / f"gpu-{datetime.date.today()}.md")
    if out:
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
