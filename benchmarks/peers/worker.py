"""The peer side of the benchmark, run by the peer venv's Python (>= 3.12, no ffsr in it):
``python worker.py JOB JSON`` prints one JSON line.

Jobs:
- ``vs``: evaluate upscale.vpy (vs-mlrt) with the given arguments and pull every frame of
  its output, as vspipe does (VapourSynth's own frame requests, core.num_threads at a
  time); returns the time each frame came out.
- ``alone``: ONNX Runtime or OpenVINO on frames already in memory, the same ONNX file:
  the runtime's own speed with nothing around it.
- ``versions``: what is installed (the report's machine lines).
"""

from __future__ import annotations

import json
import resource
import runpy
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _self_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def job_vs(a: dict[str, Any]) -> dict[str, Any]:
    import vapoursynth as vs

    started = time.monotonic()
    runpy.run_path(str(HERE / "upscale.vpy"), init_globals={k: str(v) for k, v in a.items()})
    clip = vs.get_output(0)
    if isinstance(clip, vs.VideoOutputTuple):
        clip = clip.clip
    ready = time.monotonic()  # source indexed, network read and compiled
    stamps = []
    for i, frame in enumerate(clip.frames(close=True)):
        stamps.append((time.monotonic(), i + 1))
        del frame
    return {"stamps": stamps, "frames": len(stamps), "setup_s": ready - started,
            "threads": vs.core.num_threads, "format": clip.format.name,
            "size": [clip.width, clip.height], "self_mb": _self_mb()}


def _frames(a: dict[str, Any]) -> list[Any]:
    """The clip's frames as float32 NCHW tensors in [0, 1], decoded by ffmpeg the way
    ffsr's graph feeds the network (Y plane as is; RGB via swscale's BT.601)."""
    import numpy as np

    w, h, c = a["width"], a["height"], a["channels"]
    vf = ["-vf", "extractplanes=y", "-pix_fmt", "gray"] if c == 1 else ["-pix_fmt", "rgb24"]
    raw = subprocess.run([a["ffmpeg"], "-v", "error", "-nostdin", "-i", a["source"], *vf,
                          "-frames:v", str(a["frames"]), "-f", "rawvideo", "-"],
                         capture_output=True, check=True).stdout
    n = len(raw) // (w * h * c)
    arr = np.frombuffer(raw[: n * w * h * c], np.uint8).reshape(n, h, w, c)
    return [np.ascontiguousarray(f.transpose(2, 0, 1)[None], np.float32) / 255 for f in arr]


def job_alone(a: dict[str, Any]) -> dict[str, Any]:
    """One synchronous request at a time with the runtime's default threading (what
    ffsr's backends do): OpenVINO's default (its precision hint left alone, bf16 on CPUs
    that have it) or ``precision`` forced; ONNX Runtime's CPU provider."""
    xs = _frames(a)
    if not xs:
        raise SystemExit(f"no frames decoded from {a['source']}")
    detail = ""
    if a["runtime"] == "ov":
        import openvino as ov

        core = ov.Core()
        net = core.read_model(a["network"])
        net.reshape({net.input(0).get_any_name(): list(xs[0].shape)})
        config = {"INFERENCE_PRECISION_HINT": a["precision"]} if a.get("precision") else {}
        compiled = core.compile_model(net, "CPU", config)
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        detail = hint.to_string() if hasattr(hint, "to_string") else str(hint)  # bf16, f32
        request = compiled.create_infer_request()

        def run(x: Any) -> None:
            request.infer({0: x})
    elif a["runtime"] == "ort":
        import onnxruntime as ort

        sess = ort.InferenceSession(a["network"], providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def run(x: Any) -> None:
            sess.run(None, {name: x})
    else:
        raise SystemExit(f"unknown runtime {a['runtime']!r}")
    run(xs[0])  # warm-up: first-run allocations are start-up, not steady state
    started = time.perf_counter()
    for x in xs:
        run(x)
    seconds = time.perf_counter() - started
    return {"fps": len(xs) / seconds, "runs": len(xs), "seconds": seconds,
            "precision": detail, "self_mb": _self_mb()}


def job_versions(a: dict[str, Any]) -> dict[str, Any]:
    import vapoursynth as vs

    core = vs.core
    ov_v, ort_v = core.ov.Version(), core.ort.Version()

    def s(v: object) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    return {"python": sys.version.split()[0], "vapoursynth": f"R{core.core_version.release_major}",
            "vsov": s(ov_v["version"]), "vsov_openvino": s(ov_v["openvino_version_build"]),
            "vsort": s(ort_v["version"]), "vsort_onnxruntime": s(ort_v["onnxruntime_version"]),
            "bestsource": version("vapoursynth-bestsource"), "openvino": version("openvino"),
            "onnxruntime": version("onnxruntime"), "threads": core.num_threads,
            "ov_signature": core.ov.Model.signature}


JOBS = {"vs": job_vs, "alone": job_alone, "versions": job_versions}

if __name__ == "__main__":
    job, args = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(JOBS[job](args)))
