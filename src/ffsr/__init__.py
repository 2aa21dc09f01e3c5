"""ffsr: neural super-resolution and frame interpolation inside one ffmpeg process."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ffsr")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"

__all__ = ["__version__", "graph", "upscale"]


def __getattr__(name: str) -> object:
    """Import the API lazily: `ffsr --version` should not load Jinja or probe ffmpeg."""
    if name in ("upscale", "graph"):
        from ffsr import api

        return getattr(api, name)
    raise AttributeError(name)
