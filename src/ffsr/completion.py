"""Shell completion values (typer's completion for bash, zsh and fish calls these on every
<Tab>): they read only files, never start ffmpeg, and never fail loudly."""

from __future__ import annotations

from contextlib import suppress

from ffsr.model_card import CARD_SUFFIX
from ffsr.paths import converted_models_dir


def model_names(incomplete: str) -> list[str]:
    """Zoo models and converted ones (the names `-m` takes) starting with ``incomplete``."""
    from ffsr.zoo import zoo

    names: set[str] = set()
    with suppress(OSError, ValueError, KeyError):
        names.update(zoo())
    with suppress(OSError):
        names.update(d.name for d in converted_models_dir().iterdir()
                     if (d / f"{d.name}{CARD_SUFFIX}").is_file())
    return sorted(n for n in names if n.startswith(incomplete))


def zoo_names(incomplete: str) -> list[str]:
    """Zoo models only (what `ffsr convert-model NAME` takes)."""
    from ffsr.zoo import zoo

    try:
        return sorted(n for n in zoo() if n.startswith(incomplete))
    except (OSError, ValueError, KeyError):
        return []
