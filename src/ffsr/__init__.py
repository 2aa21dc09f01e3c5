"""ffsr: neural super-resolution and frame interpolation inside one ffmpeg process."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ffsr")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"

API = ("upscale", "graph", "upscale_batch", "upscale_stream", "ffmpeg_path")
__all__ = ["__version__", *API]


def __getattr__(name: str) -> object:
    """Import the API lazily: `ffsr --version` should not load Jinja or probe ffmpeg."""
    if name in API:
        from ffsr import api

        return getattr(api, name)
    raise AttributeError(name)
