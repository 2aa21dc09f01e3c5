"""`ffsr doctor`: what ffsr will run with, asked from the real binaries and services."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

from ffsr.backends import BACKENDS
from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import capabilities, choose_ffmpeg
from ffsr.versions import installed_versions

KEY_FILTERS = ("dnn_processing", "sr", "extractplanes", "mergeplanes", "scale", "minterpolate")
RUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "torch", "tensorflow", "onnx",
                         "spandrel", "docker")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    can_upscale: bool = False

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))


def docker_status() -> tuple[bool, str]:
    """Whether a Docker engine answers, in words (the same errors build-image gives)."""
    from ffsr.image import connect

    try:
        version = connect(timeout=5).version().get("Version", "?")
    except FfsrError as e:
        return False, e.message
    return True, f"engine {version} reachable"


def gpu_status() -> tuple[bool, str]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False, "no NVIDIA GPU visible (nvidia-smi not found)"
    out = subprocess.run([smi, "-L"], capture_output=True, text=True)
    gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    if out.returncode != 0 or not gpus:
        return False, "nvidia-smi found no GPU"
    return True, "; ".join(gpus)


def run_doctor() -> DoctorReport:
    report = DoctorReport()
    try:
        choice = choose_ffmpeg()
    except FfsrError as e:
        report.add("ffmpeg", False, e.message)
        choice = None
    if choice:
        caps = capabilities(choice.ffmpeg)
        report.add("ffmpeg", True, f"{choice.ffmpeg} ({choice.reason}), version {caps.version}")
        for name in BACKENDS:
            has = name in caps.dnn_backends
            report.add(f"backend {name}", has, "compiled in" if has else
                       f"missing: this ffmpeg was not configured with {BACKENDS[name].configure_flag}")
        missing = [f for f in KEY_FILTERS if f not in caps.filters]
        report.add("filters", not missing, "all present: " + ", ".join(KEY_FILTERS) if not missing
                   else "missing: " + ", ".join(missing))
        report.add("libx264", "libx264" in caps.encoders,
                   "H.264 encoder present" if "libx264" in caps.encoders else "no libx264 encoder")
        report.can_upscale = bool(caps.dnn_backends) and "dnn_processing" in caps.filters
        if not report.can_upscale:
            report.add("upscale", False, "this ffmpeg has no DNN backend: run `ffsr build-ffmpeg`")
    ok, detail = docker_status()
    report.add("docker", ok, detail)
    ok, detail = gpu_status()
    report.add("gpu", ok, detail)
    versions = installed_versions(RUNTIME_DISTRIBUTIONS)
    report.add("runtimes", bool(versions),
               ", ".join(f"{k} {v}" for k, v in versions.items()) or "none installed")
    return report
