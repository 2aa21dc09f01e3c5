"""`eval "$(ffsr env)"`: ffsr's ffmpeg and ffprobe first on PATH, so existing scripts that
call `ffmpeg` pick up the build with the DNN backends unchanged.

PATH gets a small folder of two symlinks rather than the build's own bin folder, so ffsr
never shadows other tools. The builds find their runtime libraries through RPATHs (the
build script links them so); ``missing_libraries`` checks that with ldd instead of
exporting a library path that would leak into every other program the shell starts.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import FfmpegChoice, choose_ffmpeg
from ffsr.paths import cache_dir, ffmpeg_builds_dir

SHELLS = ("bash", "zsh", "fish", "sh")
TOOLS = ("ffmpeg", "ffprobe")
MARKER = ".ffsr-env"
"""A file in every folder `ffsr env` puts on PATH: how `--unset` recognises its own entries."""


SHELL_ALIASES = {"dash": "sh", "ksh": "sh", "mksh": "sh"}
KNOWN_SHELLS = (*SHELLS, *SHELL_ALIASES, "csh", "tcsh")
"""Names a parent process may have that mean a shell, spoken or not."""


def parent_shell(ppid: int | None = None) -> str | None:
    """The shell that started ffsr (``eval "$(ffsr env)"`` runs ffsr from one), when the parent
    process is a shell at all; None elsewhere (a Python test harness, cron, no /proc)."""
    proc = Path(f"/proc/{ppid or os.getppid()}")
    try:  # the binary, not comm: a `#!/bin/bash` script's comm is the script's own name
        name = Path(os.readlink(proc / "exe")).name
    except OSError:
        return None
    name = re.sub(r"[\d.]+$", "", name)  # bash5.2, zsh-5.9 builds
    return name.rstrip("-") if name.rstrip("-") in KNOWN_SHELLS else None


def detect_shell(explicit: str | None = None, environ: Mapping[str, str] = os.environ,
                 parent: str | None = None) -> str:
    """``--shell``, else the shell running ffsr, else the name of $SHELL; dash and ksh speak sh.

    The running shell comes before $SHELL: a bash script run from cron or CI has no $SHELL,
    and a zsh user's bash script must get bash syntax."""
    name = explicit or parent or Path(environ.get("SHELL", "")).name
    name = SHELL_ALIASES.get(name, name)
    if name not in SHELLS:
        said = f"'{name}'" if name else "nothing ($SHELL is not set)"
        raise FfsrError(f"Cannot tell the shell from {said}; pass --shell with one of "
                        f"{', '.join(SHELLS)}.")
    return name


def ffsr_ffmpeg() -> FfmpegChoice:
    """The ffmpeg ffsr runs, refused when it is only some other ffmpeg found on PATH."""
    choice = choose_ffmpeg()
    builds = ffmpeg_builds_dir().resolve()
    if not os.environ.get("FFSR_FFMPEG") and builds not in choice.ffmpeg.resolve().parents:
        raise FfsrError("ffsr has no ffmpeg of its own yet: run `ffsr build-ffmpeg` (or set "
                        "FFSR_FFMPEG) first.")
    return choice


def missing_libraries(binary: Path) -> list[str]:
    """Shared libraries the dynamic loader cannot find for ``binary`` (ldd), [] when all resolve."""
    ldd = shutil.which("ldd")
    if not ldd:
        return []
    out = subprocess.run([ldd, str(binary)], capture_output=True, text=True, timeout=60)
    return [ln.split()[0] for ln in out.stdout.splitlines() if "not found" in ln]


def env_bin_dir(choice: FfmpegChoice) -> Path:
    """A folder holding only ``ffmpeg`` and ``ffprobe`` links to the chosen build, one per build
    (so two shells on two builds do not fight over it); made or refreshed on each call."""
    ffmpeg = choice.ffmpeg.resolve()
    ffprobe = choice.ffprobe.resolve()
    key = hashlib.sha256(str(ffmpeg).encode()).hexdigest()[:12]
    folder = cache_dir() / "env" / key / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in zip(TOOLS, (ffmpeg, ffprobe), strict=True):
        missing = missing_libraries(target)
        if missing:
            raise FfsrError(f"{target} cannot find {', '.join(missing)}: rebuild it with "
                            "`ffsr build-ffmpeg --force`.")
        link = folder / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        tmp = folder / f".{name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)  # atomic: a script running meanwhile never sees no ffmpeg
    (folder / MARKER).write_text(f"{ffmpeg}\n")
    return folder


def _without_ffsr(path: str) -> list[str]:
    return [p for p in path.split(os.pathsep) if p and not (Path(p) / MARKER).is_file()]


def _quote(shell: str, value: str) -> str:
    if shell == "fish":  # fish single quotes: only \\ and \' are escapes
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return shlex.quote(value)


def _set_path(shell: str, entries: Sequence[str]) -> str:
    if shell == "fish":
        return f"set -gx PATH {' '.join(_quote(shell, e) for e in entries)}\n"
    # Assigning PATH makes bash and zsh forget hashed command locations; hash -r says it twice.
    return (f"export PATH={_quote(shell, os.pathsep.join(entries))}\n"
            "hash -r 2>/dev/null || true\n")


def env_script(shell: str, unset: bool = False, environ: Mapping[str, str] = os.environ) -> str:
    """Shell code for eval: ffsr's folder first on PATH (replacing an earlier one), or gone."""
    entries = _without_ffsr(environ.get("PATH", ""))
    if not unset:
        entries.insert(0, str(env_bin_dir(ffsr_ffmpeg())))
    return _set_path(shell, entries)


def path_status() -> tuple[bool, str]:
    """For `ffsr doctor`: whether the `ffmpeg` a script would run is ffsr's."""
    try:
        ours = ffsr_ffmpeg().ffmpeg.resolve()
    except FfsrError as e:
        return False, e.message
    found = shutil.which("ffmpeg")
    if found and Path(found).resolve() == ours:
        return True, f"`ffmpeg` on PATH is ffsr's ({found})"
    where = f"is {found}" if found else "finds none"
    return False, (f"`ffmpeg` on PATH {where}; run eval \"$(ffsr env)\" to put ffsr's first "
                   "for your own scripts")
