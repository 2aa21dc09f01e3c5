"""ffsr: neural super-resolution and frame interpolation inside one ffmpeg process."""

API = ("upscale", "graph", "upscale_batch", "upscale_stream", "ffmpeg_path")
__all__ = ["__version__", *API]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ffsr")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0+source"


def __getattr__(name: str) -> object:
    """Import lazily: every `ffsr` command pays for what it imports at start-up
    (importlib.metadata alone is ~0.1 s), so `--version` and `upscale` load only their own."""
    if name == "__version__":
        return _version()
    if name in API:
        from ffsr import api

        return getattr(api, name)
    raise AttributeError(name)
