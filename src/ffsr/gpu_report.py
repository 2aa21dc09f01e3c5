"""The GPU lines of `ffsr doctor`: the host's GPUs and driver, Docker's GPU runtime, the cuda
image's CUDA against the host driver, and whether NVENC opens. Every line that is not ok
says what to do, so a GPU user can fix the set-up before the first job."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import capabilities
from ffsr.gpu import (
    DRIVER_INSTALL,
    NVENC_ENCODERS,
    HostGpus,
    backend_cuda_problem,
    cuda_driver_minimum,
    driver_at_least,
    host_gpus,
    local_cuda_version,
    nvenc_driver_minimum,
    nvenc_failure,
)

NVENC_PROBE_ARGS = ("-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "color=black:size=256x256:rate=25", "-frames:v", "1")
"""One black frame through the encoder: opening NVENC is what fails on a bad set-up."""


@dataclass(frozen=True)
class Line:
    name: str
    ok: bool
    detail: str


def nvenc_argv(ffmpeg: str, encoder: str) -> list[str]:
    return [ffmpeg, *NVENC_PROBE_ARGS, "-c:v", encoder, "-f", "null", "-"]


def host_line(host: HostGpus) -> Line:
    if not host.ok:
        problem = host.problem or "no GPU"
        cuda = local_cuda_version()
        minimum = cuda_driver_minimum(cuda) if cuda else None
        if minimum and problem.endswith(DRIVER_INSTALL):
            problem += f" (version {minimum} or newer, for the CUDA {cuda} runtimes installed here)"
        return Line("gpu", False, problem)
    gpus = "; ".join(f"GPU {g.index}: {g.name} ({g.memory_mib} MiB)" for g in host.gpus)
    return Line("gpu", True, f"driver {host.driver}; {gpus}")


def backend_line(ffmpeg: Path, backends: frozenset[str]) -> Line:
    """Whether this ffmpeg's onnx/torch backends can use CUDA."""
    problems = {b: backend_cuda_problem(ffmpeg, b) for b in ("onnx", "torch") if b in backends}
    ready = [b for b, p in problems.items() if p is None]
    if ready:
        return Line("gpu backends", True, f"CUDA-capable in this ffmpeg: {', '.join(ready)}")
    if not problems:
        return Line("gpu backends", False, "this ffmpeg has neither the onnx nor the torch backend: "
                                           "run `ffsr build-ffmpeg --cuda`")
    return Line("gpu backends", False, "; ".join(f"{b}: {p}" for b, p in problems.items()))


def nvenc_line(encoders: frozenset[str], host: HostGpus,
               run: Callable[[list[str]], tuple[int, str]], where: str) -> Line:
    """Open the first NVENC encoder the ffmpeg has on one frame (``run`` gives rc, log)."""
    have = [e for e in NVENC_ENCODERS if e in encoders]
    if not have:
        return Line(f"nvenc {where}", False, "this ffmpeg has no NVENC encoder: run `ffsr build-ffmpeg "
                                             "--cuda`, or use --runtime docker with the cuda image")
    if not host.ok:
        return Line(f"nvenc {where}", False, f"{', '.join(have)} compiled in, but there is no NVIDIA "
                                             "GPU to open them on (see the gpu line)")
    rc, log = run(nvenc_argv("ffmpeg", have[0]))
    if rc == 0:
        return Line(f"nvenc {where}", True, f"{have[0]} opens on {host.gpus[0].name}")
    reason = nvenc_failure(log) or f"ffmpeg exited {rc}: {log.strip()[-160:]}"
    return Line(f"nvenc {where}", False, f"{have[0]} does not open: {reason}")


def local_lines(ffmpeg: Path, encoders: frozenset[str], backends: frozenset[str],
                host: HostGpus) -> list[Line]:
    def run(argv: list[str]) -> tuple[int, str]:
        out = subprocess.run([str(ffmpeg), *argv[1:]], capture_output=True, text=True, timeout=120)
        return out.returncode, out.stderr

    lines = [nvenc_line(encoders, host, run, "(local)")]
    if host.ok:
        lines.insert(0, backend_line(ffmpeg, backends))
    return lines


def docker_lines(api: Any, host: HostGpus) -> list[Line]:
    """Docker's GPU runtime, the cuda image against the host driver, NVENC in the image."""
    from ffsr.docker_gpu import TOOLKIT_FIX, engine_gpu_support, engine_is_local, image_gpu
    from ffsr.image import default_tag, image_exists

    support = engine_gpu_support(api.info())
    lines = [Line("docker gpu", support.ok, support.describe() if support.ok else
                  f"no GPU runtime in Docker: {TOOLKIT_FIX}")]
    tag = default_tag("cuda")
    if not image_exists(api, tag):
        lines.append(Line("cuda image", False, f"{tag} not built: `ffsr build-image --flavor cuda` "
                                               "(about 15 min, 7 GB)"))
        return lines
    facts = image_gpu(api, tag)
    minimum = cuda_driver_minimum(facts.cuda) if facts.cuda else None
    needs = f"{tag}: CUDA {facts.cuda or '?'}, needs driver {minimum or '?'} or newer"
    if not engine_is_local(os.environ):
        lines.append(Line("cuda image", True, f"{needs} (the engine is remote: check its driver there)"))
    elif not host.driver:
        lines.append(Line("cuda image", False, f"{needs}; this host has no NVIDIA driver: install it"))
    elif minimum and not driver_at_least(host.driver, minimum):
        lines.append(Line("cuda image", False, f"{needs}; this host has {host.driver}: update the "
                                               f"driver to at least version {minimum}"))
    else:
        lines.append(Line("cuda image", True, f"{needs}; this host has {host.driver}"))
    if support.ok and host.ok:
        lines.append(docker_nvenc_line(tag, host))
    return lines


def docker_nvenc_line(image: str, host: HostGpus) -> Line:
    from ffsr.runtime import run_container

    def run(argv: list[str]) -> tuple[int, str]:
        try:
            return run_container(image, argv, [], gpu=True)
        except FfsrError as e:
            return 1, e.message

    return nvenc_line(frozenset(NVENC_ENCODERS), host, run, "(cuda image)")


def gpu_lines(ffmpeg: Path | None, docker: bool) -> list[Line]:
    """Every GPU line of the report, for this ffmpeg (None: none found) and, when ``docker``
    (an engine answers), for Docker."""
    host = host_gpus()
    lines = [host_line(host)]
    if ffmpeg is not None:
        caps = capabilities(ffmpeg)
        lines += local_lines(ffmpeg, caps.encoders, caps.dnn_backends, host)
    if docker:
        from ffsr.image import connect

        try:
            lines += docker_lines(connect(timeout=10), host)
        except FfsrError as e:
            lines.append(Line("docker gpu", False, e.message))
    driver = nvenc_driver_minimum()
    if driver and host.driver and not driver_at_least(host.driver, driver):
        lines.append(Line("nvenc driver", False, f"NVENC in ffsr's FFmpeg needs driver {driver} or "
                                                 f"newer, this host has {host.driver}: update the driver"))
    return lines
