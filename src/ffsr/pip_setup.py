"""The host's working pip configuration, carried into `ffsr build-image`.

pip on a host often works only because its configuration names a certificate bundle (a
TLS-intercepting proxy) and local wheel folders; a build container sees none of that.
This module reads that configuration the way pip does (environment over config files,
``install`` over ``global``), decides what the build can use, and says why in one line
per decision. Index hosts that cannot be reached are dropped up front: pip would retry
them for minutes.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ffsr.errors import FfsrError

PYPI_INDEX = "https://pypi.org/simple"
PROBE_TIMEOUT_S = 3.0
LOCAL_INDEX_LIMIT_BYTES = 1_000_000_000
"""A local (file://) index larger than this stays out of the build context."""
CA_ENV_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
"""Where pip (requests, OpenSSL) also finds a bundle when its own ``cert`` is unset."""


@dataclass(frozen=True)
class PipSetup:
    """What pip inside the build uses; ``notes`` say where each part came from."""

    ca_bundle: Path | None = None
    wheel_dirs: tuple[Path, ...] = ()
    local_indexes: tuple[Path, ...] = ()
    """Roots of file:// indexes (the folder holding ``simple/``), carried into the context."""
    index_url: str | None = None
    """A remote primary index other than PyPI (a company mirror)."""
    extra_index_urls: tuple[str, ...] = ()
    no_index: bool = False
    """The primary index is unreachable: pip uses only the carried wheels and indexes."""
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------- reading pip's configuration


def pip_config_entries(python: str = sys.executable) -> dict[str, str]:
    """``pip config list`` of ``python`` as {"section.key": value} (empty when pip is missing)."""
    try:
        out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_config_list(out.stdout) if out.returncode == 0 else {}


def parse_config_list(text: str) -> dict[str, str]:
    """Parse ``pip config list`` lines such as ``global.cert='/etc/ssl/cert.pem'``."""
    entries = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and "." in key:
            entries[key.strip()] = value.strip().strip("'\"")
    return entries


def effective_entry(entries: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(key, value) pip's ``install`` command uses: environment, then [install], then [global]."""
    for section in (":env:", "install", "global"):
        key = f"{section}.{name}"
        if key in entries:
            return key, entries[key]
    return None


def effective(entries: Mapping[str, str], name: str) -> str | None:
    entry = effective_entry(entries, name)
    return entry[1] if entry else None


def _words(value: str | None) -> list[str]:
    return value.split() if value else []


def _local_path(location: str) -> Path | None:
    """A file:// URL or a plain path as a Path; None for remote URLs."""
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if "://" in location:
        return None
    return Path(location).expanduser()


def _size_up_to(root: Path, limit: int) -> int:
    """Bytes under ``root``, counting stops once past ``limit``."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            if total > limit:
                return total
    return total


def _human(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


# ---------------------------------------------------------------- probing index hosts


def probe(url: str, ca_bundle: Path | None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``url``'s host accepts a TCP (and for https a TLS) connection within
    ``timeout``; else the reason. A certificate the bundle does not trust still counts as
    reachable: the build then fails with the sentence that names --ca-bundle."""
    parts = urlparse(url)
    host = parts.hostname
    if not host:
        return "not a URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    except (OSError, ssl.SSLError):  # an unreadable bundle is pip's problem to report
        context = ssl.create_default_context()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if parts.scheme != "https":
                return None
            sock.settimeout(timeout)
            with context.wrap_socket(sock, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError:
        return None
    except socket.gaierror:
        return "the name does not resolve"
    except TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except (OSError, ssl.SSLError) as e:
        return e.strerror or str(e) or type(e).__name__


def probe_all(urls: Sequence[str], ca_bundle: Path | None,
              prober: Callable[[str, Path | None], str | None] = probe) -> dict[str, str | None]:
    """Probe every URL at once (the whole check takes one timeout, not one per host)."""
    if not urls:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        return dict(zip(urls, pool.map(lambda u: prober(u, ca_bundle), urls), strict=True))


# ---------------------------------------------------------------- deciding


def discover(*, ca_bundle: Path | None = None, wheelhouse: Path | None = None,
             wanted_indexes: Callable[[Sequence[Path]], Sequence[str]] = lambda _: (),
             needs_index: Callable[[str], str] | None = None,
             entries: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None,
             prober: Callable[[str, Path | None], str | None] = probe) -> PipSetup:
    """The pip setup for a build: ``ca_bundle``/``wheelhouse`` override what pip's own
    configuration names; ``wanted_indexes(wheel_dirs)`` gives the indexes the build wants
    besides the configured ones (probed alike). ``needs_index(url)`` returns why the build
    cannot do without that index ("" when it can): then it is refused up front.
    ``entries`` and ``environ`` default to this machine's (``pip config list``, os.environ)."""
    entries = pip_config_entries() if entries is None else entries
    environ = os.environ if environ is None else environ
    notes: list[str] = []

    cert = ca_bundle
    if cert is not None:
        notes.append(f"CA bundle {cert} (--ca-bundle)")
    else:
        entry = effective_entry(entries, "cert")
        sources: list[tuple[str, str | None]] = [(f"pip config {entry[0]}", entry[1])] if entry else []
        sources += [(var, environ.get(var)) for var in CA_ENV_VARS]
        for origin, value in sources:
            if value and Path(value).is_file():
                cert = Path(value)
                notes.append(f"CA bundle {cert} (from {origin})")
                break

    wheel_dirs: list[Path] = []
    if wheelhouse is not None:
        wheel_dirs.append(wheelhouse)
        notes.append(f"local wheels from {wheelhouse} (--wheelhouse)")
    else:
        remote_links = []
        for link in _words(effective(entries, "find-links")):
            path = _local_path(link)
            if path is None:
                remote_links.append(link)
            elif path.is_dir() and path not in wheel_dirs:
                wheel_dirs.append(path)
                count = len(list(path.glob("*.whl")))
                notes.append(f"local wheels from {path} ({count} wheel{'s' * (count != 1)}, "
                             "from pip config find-links)")
        if remote_links:
            notes.append(f"left out the remote find-links {' '.join(remote_links)}")

    local_indexes: list[Path] = []

    def carry(url: str) -> None:
        """Carry a file:// index into the build when it is small enough, else say why not."""
        path = _local_path(url)
        assert path is not None
        root = path.parent if path.name == "simple" else path
        if not (root / "simple").is_dir():
            notes.append(f"left out the local index {url}: it has no simple/ folder")
            return
        size = _size_up_to(root, LOCAL_INDEX_LIMIT_BYTES)
        if size > LOCAL_INDEX_LIMIT_BYTES:
            notes.append(f"left out the local index {url} (over {_human(LOCAL_INDEX_LIMIT_BYTES)}, "
                         "too large to carry into the build)")
        elif root not in local_indexes:
            local_indexes.append(root)
            notes.append(f"local index {url} carried into the build ({_human(size)})")

    primary = effective(entries, "index-url") or PYPI_INDEX
    primary_local = _local_path(primary) is not None
    if primary_local:
        carry(primary)
    extras = []
    for url in dict.fromkeys([*_words(effective(entries, "extra-index-url")),
                              *wanted_indexes(wheel_dirs)]):
        if _local_path(url) is None:
            extras.append(url)
        else:
            carry(url)

    reasons = probe_all([u for u in [primary, *extras] if _local_path(u) is None], cert, prober)
    kept_extras = []
    for url in extras:
        if (reason := reasons.get(url)) is None:
            kept_extras.append(url)
            continue
        why = needs_index(url) if needs_index else ""
        if why:
            raise FfsrError(f"The package index {url} cannot be reached ({reason}) and {why}.")
        notes.append(f"left out the index {url}: cannot connect ({reason})")
    no_index = primary_local
    if not primary_local and (reason := reasons.get(primary)) is not None:
        if not (wheel_dirs or local_indexes):
            raise FfsrError(f"The package index {primary} cannot be reached ({reason}) and pip "
                            "names no local wheels: connect to the network, or pass --wheelhouse "
                            "with the wheels the image needs.")
        no_index = True
        notes.append(f"the index {primary} cannot be reached ({reason}): pip uses only local "
                     "wheels and indexes")
    return PipSetup(ca_bundle=cert, wheel_dirs=tuple(wheel_dirs), local_indexes=tuple(local_indexes),
                    index_url=None if no_index or primary == PYPI_INDEX else primary,
                    extra_index_urls=tuple(kept_extras), no_index=no_index, notes=tuple(notes))


def overrides_only(ca_bundle: Path | None, wheelhouse: Path | None,
                   wanted_indexes: Callable[[Sequence[Path]], Sequence[str]] = lambda _: ()) -> PipSetup:
    """Only what was passed explicitly: no configuration read, no host probed."""
    wheel_dirs = (wheelhouse,) if wheelhouse else ()
    return PipSetup(ca_bundle=ca_bundle, wheel_dirs=wheel_dirs,
                    extra_index_urls=tuple(wanted_indexes(wheel_dirs)))
