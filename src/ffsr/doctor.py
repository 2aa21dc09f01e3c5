"""`ffsr doctor`: what ffsr will run with, asked from the real binaries and services."""

from __future__ import annotations

from dataclasses import dataclass, field

from ffsr.backends import BACKENDS
from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import capabilities, choose_ffmpeg
from ffsr.gpu_report import gpu_lines
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
    if choice:
        from ffsr.shell_env import path_status

        report.add("ffmpeg on PATH", *path_status())
    ok, detail = docker_status()
    report.add("docker", ok, detail)
    for line in gpu_lines(choice.ffmpeg if choice else None, docker=ok):
        report.add(line.name, line.ok, line.detail)
    versions = installed_versions(RUNTIME_DISTRIBUTIONS)
    report.add("runtimes", bool(versions),
               ", ".join(f"{k} {v}" for k, v in versions.items()) or "none installed")
    return report
