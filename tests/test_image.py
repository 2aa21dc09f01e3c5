"""`ffsr build-image`: the rendered Dockerfile (both flavours), the build context, the
errors users see, and (marker ``docker``) the cpu image built for real and run with no
network, as a non-root user, inputs read-only, upscaling a real clip on the onnx and
torch backends with the same pixels as onnxruntime and torch give."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ffsr.errors import FfsrError
from ffsr.image import (
    INPUTS_LABEL,
    PREFIX,
    TLS_FAILURE,
    USER,
    ImageConfig,
    _BuildWatcher,
    build_image,
    check_disk_space,
    connect,
    default_tag,
    engine_error,
    ensure_base_image,
    fetch_sources,
    ffsr_requirements,
    make_context,
    nvenc_deb_name,
    pip_options,
    pip_setup,
    python_requirements,
    render_dockerfile,
)
from ffsr.paths import DOCKER_DIR
from ffsr.pip_setup import discover, effective, parse_config_list, pip_config_entries, probe
from ffsr.quality import compare_8bit
from ffsr.versions import ffmpeg_version, pinned

INSTRUCTIONS = {"FROM", "RUN", "COPY", "ENV", "LABEL", "USER", "WORKDIR", "ENTRYPOINT", "CMD", "ARG"}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = pending + line
        pending = ""
        word, _, rest = logical.partition(" ")
        out.append((word, rest.strip()))
    assert not pending, "a continuation line runs off the end"
    return out


def label_pairs(args: str) -> dict[str, str]:
    return {k: v.replace('\\"', '"') for k, v in re.findall(r'([\w.\-]+)="((?:[^"\\]|\\.)*)"', args)}


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("flavor", ["cpu", "cuda"])
def test_dockerfile_is_multi_stage_non_root_with_ffmpeg_entrypoint(flavor: str) -> None:
    steps = instructions(render_dockerfile(ImageConfig(flavor=flavor)))
    assert {word for word, _ in steps} <= INSTRUCTIONS
    froms = [args for word, args in steps if word == "FROM"]
    assert froms == ["ffsr-base:bookworm AS system", "system AS builder", "system AS runtime"]
    runtime = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    users = [args for word, args in runtime if word == "USER"]
    assert users == [USER] and USER != "root"
    assert ("ENTRYPOINT", f'["{PREFIX}/ffmpeg/bin/ffmpeg"]') in runtime
    # The runtime stage ships no compilers and no CA bundle: only what the builder made.
    runtime_text = "\n".join(args for _, args in runtime)
    assert "build-essential" not in runtime_text and "ca-bundle" not in runtime_text


@pytest.mark.parametrize("flavor", ["cpu", "cuda"])
def test_builder_runs_the_ffmpeg_build_script_with_the_shipped_sources(flavor: str) -> None:
    text = render_dockerfile(ImageConfig(flavor=flavor))
    runs = [args for word, args in instructions(text) if word == "RUN" and "build-ffmpeg.sh" in args]
    assert len(runs) == 1
    cmd = runs[0].split()
    assert cmd[:2] == ["bash", "/build/docker/build-ffmpeg.sh"]
    assert cmd[cmd.index("--source") + 1] == f"/build/sources/ffmpeg-{ffmpeg_version()}.tar.xz"
    assert cmd[cmd.index("--backends") + 1] == "onnx,openvino,torch,tensorflow"
    assert ("--cuda" in cmd) == (flavor == "cuda")
    assert ("libffmpeg-nvenc-dev" in text) == (flavor == "cuda")
    assert "Step" not in text and "{{" not in text and "{%" not in text


@pytest.mark.parametrize("flavor", ["cpu", "cuda"])
def test_labels_carry_every_pinned_version(flavor: str) -> None:
    steps = instructions(render_dockerfile(ImageConfig(flavor=flavor)))
    labels: dict[str, str] = {}
    for word, args in steps:
        if word == "LABEL":
            labels.update(label_pairs(args))
    for key, value in pinned().items():
        assert labels[f"org.ffsr.pin.{key.lower().replace('_', '-')}"] == value
    assert labels["org.ffsr.flavor"] == flavor
    assert labels["org.ffsr.python-requirements"] == " ".join(python_requirements(ImageConfig(flavor=flavor)))


def test_flavours_take_their_own_runtimes() -> None:
    pins = pinned()
    cpu = python_requirements(ImageConfig(flavor="cpu"))
    cuda = python_requirements(ImageConfig(flavor="cuda"))
    assert f"onnxruntime=={pins['ONNXRUNTIME_VERSION']}" in cpu
    assert f"torch=={pins['TORCH_CPU_VERSION']}" in cpu
    assert not any(r.startswith(("onnxruntime-gpu", "spandrel", "torchvision")) for r in cpu)
    assert f"onnxruntime-gpu[cuda,cudnn]=={pins['ONNXRUNTIME_VERSION']}" in cuda
    assert f"torch=={pins['TORCH_VERSION']}" in cuda
    assert f"spandrel=={pins['SPANDREL_VERSION']}" in cuda
    only_onnx = python_requirements(ImageConfig(flavor="cpu", backends=("onnx",)))
    assert not any(r.startswith(("torch", "tensorflow")) for r in only_onnx)


def test_options_change_the_dockerfile(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here\n")
    plain = render_dockerfile(ImageConfig())
    assert "ca-bundle.crt" not in plain and "PIP_FIND_LINKS" not in plain
    # Without a CPU torch wheel at hand, pip is pointed at PyTorch's CPU index.
    assert f"--extra-index-url {pinned()['TORCH_CPU_INDEX_URL']}" in plain
    (wheels / f"torch-{pinned()['TORCH_CPU_VERSION']}-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    given = render_dockerfile(ImageConfig(ca_bundle=ca, wheelhouse=wheels, base_image="debian:bookworm",
                                          jobs=3, backends=("onnx",)))
    assert "COPY ca-bundle.crt" in given and "PIP_FIND_LINKS=/build/wheelhouse" in given
    assert "FROM debian:bookworm AS system" in given
    assert "--backends onnx " in given and "--jobs 3" in given
    assert "--extra-index-url" not in render_dockerfile(ImageConfig(wheelhouse=wheels))


def test_cli_options_reach_the_dockerfile(tmp_path: Path) -> None:
    """`ffsr build-image --dry-run` with --ca-bundle, --wheelhouse, --base-image, --jobs and
    --backends prints the Dockerfile those options make; --no-host-pip leaves this machine's
    pip configuration out. (--tag and --no-cache act on the build, not the Dockerfile.)"""
    ffsr = Path(sys.executable).with_name("ffsr")
    wheels, ca = tmp_path / "wheels", tmp_path / "ca.pem"
    wheels.mkdir()
    (wheels / f"torch-{pinned()['TORCH_CPU_VERSION']}-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    ca.write_text("not checked here\n")
    given = subprocess.run([str(ffsr), "build-image", "--flavor", "cpu", "--dry-run", "--ca-bundle",
                            str(ca), "--wheelhouse", str(wheels), "--base-image", "debian:bookworm",
                            "--jobs", "3", "--backends", "onnx", "--tag", "mine:1"],
                           capture_output=True, text=True, timeout=120)
    assert given.returncode == 0, given.stderr
    config = ImageConfig(flavor="cpu", ca_bundle=ca, wheelhouse=wheels,
                         base_image="debian:bookworm", jobs=3, backends=("onnx",), tag="mine:1")
    assert given.stdout == render_dockerfile(config, pip_setup(config))
    assert "COPY ca-bundle.crt" in given.stdout and "PIP_FIND_LINKS=/build/wheelhouse" in given.stdout
    assert "--extra-index-url" not in given.stdout  # the CPU torch wheel is in the wheelhouse
    assert "FROM debian:bookworm AS system" in given.stdout
    assert "--backends onnx " in given.stdout and "--jobs 3" in given.stdout
    bare = subprocess.run([str(ffsr), "build-image", "--flavor", "cpu", "--dry-run",
                           "--no-host-pip"], capture_output=True, text=True, timeout=120)
    assert bare.returncode == 0, bare.stderr
    assert "ca-bundle.crt" not in bare.stdout and "PIP_FIND_LINKS" not in bare.stdout
    assert not [ln for ln in bare.stderr.splitlines() if ln.startswith("pip: ")]


def test_default_tags_and_ffsr_itself_in_the_image() -> None:
    assert ImageConfig(flavor="cuda").image_tag == default_tag("cuda") == f"ffsr:{ffmpeg_version()}-cuda"
    text = render_dockerfile(ImageConfig())
    # ffsr's dependencies come with the runtimes; ffsr itself is installed last, offline.
    assert all(shlex.quote(r) in text for r in ffsr_requirements())
    assert f"--no-index -e {PREFIX}/app" in text


def test_bad_options_are_refused_in_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(FfsrError, match="Unknown image flavour 'gpu'"):
        render_dockerfile(ImageConfig(flavor="gpu"))
    with pytest.raises(FfsrError, match="Unknown DNN backend"):
        render_dockerfile(ImageConfig(backends=("tensorrt",)))
    with pytest.raises(FfsrError, match="CA bundle not found"):
        render_dockerfile(ImageConfig(ca_bundle=tmp_path / "missing.pem"))


def test_cli_dry_run_prints_the_dockerfile() -> None:
    ffsr = Path(sys.executable).with_name("ffsr")
    out = subprocess.run([str(ffsr), "build-image", "--flavor", "cuda", "--dry-run"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config = ImageConfig(flavor="cuda")
    pip = pip_setup(config)
    assert out.stdout == render_dockerfile(config, pip)
    # What the build takes from this machine's pip is said, one line each.
    assert [ln for ln in out.stderr.splitlines() if ln.startswith("pip: ")] == \
        [f"pip: {n}" for n in pip.notes]
    bad = subprocess.run([str(ffsr), "build-image", "--flavor", "gpu", "--dry-run"],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    assert bad.stderr.strip() == "error: Unknown image flavour 'gpu'; choose one of: cpu, cuda."


# ---------------------------------------------------------------- the host's pip configuration


def dead_url(scheme: str = "http") -> str:
    """A URL on a local port nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}/simple"


@pytest.fixture()
def live_url() -> Any:
    """A URL on a local port that accepts connections."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/simple"


def small_index(root: Path) -> Path:
    (root / "simple" / "tiny").mkdir(parents=True)
    (root / "files").mkdir()
    (root / "files" / "tiny-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (root / "simple" / "tiny" / "index.html").write_text(
        '<a href="../../files/tiny-1.0-py3-none-any.whl">tiny-1.0-py3-none-any.whl</a>')
    return root


def test_pip_config_is_read_like_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real pip's `config list`: PIP_* variables win over config files."""
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\ncert = /from/file.pem\nfind-links = /from/file\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_CERT", str(tmp_path / "env.pem"))
    entries = pip_config_entries()
    assert effective(entries, "cert") == str(tmp_path / "env.pem")
    assert effective(entries, "find-links") == "/from/file"
    assert effective(parse_config_list("global.x='1'\ninstall.x='2'\n"), "x") == "2"


def test_discovery_carries_ca_wheels_and_small_local_indexes(tmp_path: Path, live_url: str) -> None:
    ca = tmp_path / "proxy-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "a-1.0-py3-none-any.whl").write_bytes(b"a")
    index = small_index(tmp_path / "pypi")
    entries = {"global.cert": "/nonexistent.pem", ":env:.cert": str(ca),
               "global.find-links": f"{wheels} https://example.invalid/links",
               "global.extra-index-url": f"file://{index}/simple {live_url}",
               "global.index-url": live_url}
    pip = discover(entries=entries, environ={})
    assert pip.ca_bundle == ca and pip.wheel_dirs == (wheels,) and pip.local_indexes == (index,)
    assert pip.index_url == live_url and pip.extra_index_urls == (live_url,) and not pip.no_index
    assert pip.notes[0] == f"CA bundle {ca} (from pip config :env:.cert)"
    assert any(n.startswith(f"local index file://{index}/simple carried") for n in pip.notes)
    assert pip_options(pip) == ["--index-url", live_url, "--extra-index-url", live_url,
                                "--extra-index-url", "file:///build/pip-index/0/simple"]
    # Explicit options win; SSL_CERT_FILE is the last place a bundle is looked for.
    other = tmp_path / "other.pem"
    other.write_text("x")
    assert discover(ca_bundle=other, entries=entries, environ={}).ca_bundle == other
    assert discover(entries={"global.index-url": live_url},
                    environ={"SSL_CERT_FILE": str(ca)}).ca_bundle == ca
    assert discover(wheelhouse=tmp_path, entries=entries, environ={}).wheel_dirs == (tmp_path,)


def test_local_index_in_the_context_and_dockerfile(tmp_path: Path, fake_sources: Path,
                                                   live_url: str) -> None:
    index = small_index(tmp_path / "pypi")
    pip = discover(entries={"global.extra-index-url": f"file://{index}/simple",
                            "global.index-url": live_url}, environ={})
    config = ImageConfig(backends=("onnx",))
    dockerfile = render_dockerfile(config, pip)
    assert "COPY pip-index/ /build/pip-index/" in dockerfile
    assert "--extra-index-url file:///build/pip-index/0/simple" in dockerfile
    ctx = make_context(config, dockerfile, fake_sources, "sha256:base", tmp_path, pip)
    assert {"pip-index/0/simple/tiny/index.html", "pip-index/0/files/tiny-1.0-py3-none-any.whl"} \
        <= set(ctx.members)


def test_large_local_index_is_left_out_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   live_url: str) -> None:
    monkeypatch.setattr("ffsr.pip_setup.LOCAL_INDEX_LIMIT_BYTES", 3)
    index = small_index(tmp_path / "pypi")
    pip = discover(entries={"global.extra-index-url": f"file://{index}/simple",
                            "global.index-url": live_url}, environ={})
    assert pip.local_indexes == ()
    assert [n for n in pip.notes if "left out" in n] == [
        f"left out the local index file://{index}/simple (over 0 MB, too large to carry into the build)"]


def test_unreachable_index_hosts_are_dropped_up_front(tmp_path: Path, live_url: str) -> None:
    dead, unknown = dead_url(), "https://no-such-host.invalid/simple"
    pip = discover(entries={"global.extra-index-url": f"{dead} {unknown}", "global.index-url": live_url},
                   environ={})
    assert pip.extra_index_urls == ()
    dropped = [n for n in pip.notes if n.startswith("left out the index")]
    assert dropped == [f"left out the index {dead}: cannot connect (Connection refused)",
                       f"left out the index {unknown}: cannot connect (the name does not resolve)"]
    assert probe(dead, None) == "Connection refused"
    # An index the build cannot do without is refused in one sentence, before any build.
    with pytest.raises(FfsrError, match=rf"^The package index {re.escape(dead)} cannot be reached "
                                        r"\(Connection refused\) and torch needs it\.$"):
        discover(entries={"global.index-url": live_url}, environ={}, wanted_indexes=lambda _: [dead],
                 needs_index=lambda url: "torch needs it")
    # The primary index: local wheels only, or a clear refusal when there are none.
    offline = discover(entries={"global.index-url": dead, "global.find-links": str(tmp_path)}, environ={})
    assert offline.no_index and pip_options(offline) == ["--no-index"]
    with pytest.raises(FfsrError, match=r"cannot be reached .* pass --wheelhouse"):
        discover(entries={"global.index-url": dead}, environ={})


def test_cpu_torch_index_is_needed_only_without_the_wheel(tmp_path: Path) -> None:
    index = pinned()["TORCH_CPU_INDEX_URL"]
    assert pip_setup(ImageConfig(), discover_host=False).extra_index_urls == (index,)
    (tmp_path / f"torch-{pinned()['TORCH_CPU_VERSION']}-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    with_wheel = ImageConfig(wheelhouse=tmp_path)
    assert pip_setup(with_wheel, discover_host=False).extra_index_urls == ()
    assert pip_setup(ImageConfig(flavor="cuda"), discover_host=False).extra_index_urls == ()


def test_tls_failure_stops_the_build_with_one_sentence(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FFSR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("ffsr.image.fetch_sources", lambda config, log: tmp_path)
    (tmp_path / f"ffmpeg-{ffmpeg_version()}.tar.xz").write_bytes(b"x")
    (tmp_path / "onnxruntime-headers").mkdir()
    consumed: list[str] = []

    def stream() -> Any:
        yield {"stream": "Step 7/20 : RUN python3 -m venv /opt/ffsr/venv && pip install onnx\n"}
        yield {"stream": "WARNING: Retrying (Retry(total=4)) after connection broken by 'SSLError("
                         "SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                         "verify failed: self-signed certificate in certificate chain')'\n"}
        consumed.append("past the TLS failure")  # pip would go on retrying for minutes
        yield {"error": "returned a non-zero code: 1"}

    api = FakeAPI()
    api.build = lambda **kwargs: stream()  # type: ignore[method-assign]
    with pytest.raises(FfsrError) as info:
        build_image(ImageConfig(backends=("onnx",), host_pip=False), api=api)
    assert info.value.message == TLS_FAILURE and "--ca-bundle" in TLS_FAILURE
    assert consumed == []


# ---------------------------------------------------------------- context


@pytest.fixture()
def fake_sources(tmp_path: Path) -> Path:
    d = tmp_path / "sources"
    (d / "onnxruntime-headers" / "include").mkdir(parents=True)
    (d / f"ffmpeg-{ffmpeg_version()}.tar.xz").write_bytes(b"tarball")
    (d / "onnxruntime-headers" / "include" / "onnxruntime_c_api.h").write_text("/* api */\n")
    return d


def test_context_ships_the_build_script_unchanged(tmp_path: Path, fake_sources: Path) -> None:
    config = ImageConfig()
    dockerfile = render_dockerfile(config)
    ctx = make_context(config, dockerfile, fake_sources, "sha256:base", tmp_path)
    with tarfile.open(ctx.path) as tar:
        names = tar.getnames()
        def read(name: str) -> bytes:
            f = tar.extractfile(name)
            assert f is not None
            return f.read()
        assert read("Dockerfile").decode() == dockerfile
        for name in ("build-ffmpeg.sh", "fetch-sources.sh", "versions.env"):
            assert read(f"docker/{name}") == (DOCKER_DIR / name).read_bytes()
        for patch in (DOCKER_DIR / "patches").glob("*.patch"):
            assert read(f"docker/patches/{patch.name}") == patch.read_bytes()
    assert f"sources/ffmpeg-{ffmpeg_version()}.tar.xz" in names
    assert "sources/onnxruntime-headers/include/onnxruntime_c_api.h" in names
    assert "app/src/ffsr/image.py" in names and "app/pyproject.toml" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_cuda_context_carries_the_nvenc_headers_package(tmp_path: Path, fake_sources: Path) -> None:
    config = ImageConfig(flavor="cuda")
    (fake_sources / "nvenc").mkdir()
    (fake_sources / "nvenc" / nvenc_deb_name()).write_bytes(b"deb")
    dockerfile = render_dockerfile(config)
    ctx = make_context(config, dockerfile, fake_sources, "sha256:base", tmp_path)
    assert f"sources/nvenc/{nvenc_deb_name()}" in ctx.members
    assert f"RUN dpkg -i /build/sources/nvenc/{nvenc_deb_name()}" in dockerfile
    assert pinned()["FFNVCODEC_VERSION"] in nvenc_deb_name()


def test_inputs_hash_follows_the_inputs(tmp_path: Path, fake_sources: Path) -> None:
    config = ImageConfig()
    dockerfile = render_dockerfile(config)
    a = make_context(config, dockerfile, fake_sources, "sha256:base", tmp_path)
    b = make_context(config, dockerfile, fake_sources, "sha256:base", tmp_path)
    other_base = make_context(config, dockerfile, fake_sources, "sha256:other", tmp_path)
    assert a.inputs_hash == b.inputs_hash != other_base.inputs_hash
    assert a.path.read_bytes() == b.path.read_bytes()
    (fake_sources / f"ffmpeg-{ffmpeg_version()}.tar.xz").write_bytes(b"another tarball")
    changed = make_context(config, dockerfile, fake_sources, "sha256:base", tmp_path)
    assert changed.inputs_hash != a.inputs_hash


# ---------------------------------------------------------------- errors


def test_wrong_sha256_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / f"ffmpeg-{ffmpeg_version()}.tar.xz"
    bogus.write_bytes(b"not ffmpeg")
    with pytest.raises(FfsrError, match=r"has the wrong sha256 .*must be " + pinned()["FFMPEG_SHA256"]):
        fetch_sources(ImageConfig(ffmpeg_source=str(bogus)), lambda _: None, cache=tmp_path / "cache")
    with pytest.raises(FfsrError, match="FFmpeg source tarball not found"):
        fetch_sources(ImageConfig(ffmpeg_source=str(tmp_path / "nope.tar.xz")), lambda _: None,
                      cache=tmp_path / "cache")


def test_no_engine_is_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(FfsrError, match=r"^No Docker engine is reachable at unix://.*no-docker\.sock"):
        connect(timeout=5)


def test_permission_denied_and_full_disk_messages() -> None:
    from docker.errors import DockerException

    denied = DockerException("Error while fetching server API version: ('Connection aborted.', "
                             "PermissionError(13, 'Permission denied'))")
    assert engine_error(denied).message.startswith("Permission denied on the Docker socket")
    full = OSError(28, "No space left on device")
    assert "disk holding Docker's data is full" in engine_error(full).message


class FakeAPI:
    """The part of docker.APIClient that ffsr uses, with canned answers."""

    def __init__(self, build_stream: list[dict[str, Any]] | None = None, root: str = "",
                 pull_error: str = "") -> None:
        self.build_stream = build_stream or []
        self.root = root
        self.pull_error = pull_error
        self.built: dict[str, Any] = {}

    def info(self) -> dict[str, str]:
        return {"DockerRootDir": self.root}

    def inspect_image(self, name: str) -> dict[str, Any]:
        from docker.errors import ImageNotFound

        if name.startswith("ffsr-base:") or name in self.built:
            return {"Id": f"sha256:{name}", "Size": 1, "Config": {"Labels": {}}}
        raise ImageNotFound(f"No such image: {name}")

    def pull(self, name: str, stream: bool, decode: bool) -> list[dict[str, str]]:
        return [{"status": "Pulling"}, {"error": self.pull_error}]

    def build(self, **kwargs: Any) -> list[dict[str, Any]]:
        return self.build_stream


def test_unreachable_base_image(tmp_path: Path) -> None:
    api = FakeAPI(pull_error="Get https://registry/v2/: dial tcp: lookup registry: no such host")
    with pytest.raises(FfsrError, match=r"^The base image example/base:1 is not available locally and "
                                        r"could not be pulled \(Get https://registry"):
        ensure_base_image(api, ImageConfig(base_image="example/base:1"), lambda _: None)


def test_full_disk_is_refused_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("ffsr.image").image.DISK_NEEDED_GB, "cpu", 10**9)
    with pytest.raises(FfsrError, match=r"^Not enough free disk space for the cpu image"):
        check_disk_space(FakeAPI(root=str(tmp_path)), "cpu")


FAILING_STREAM: list[dict[str, Any]] = [
    {"stream": "Step 1/3 : FROM ffsr-base:bookworm AS system\n"},
    {"stream": "Step 2/3 : RUN bash /build/docker/build-ffmpeg.sh --prefix /opt/ffsr/ffmpeg\n"},
    {"stream": "==> configure: 5 feature flags, backends: onnx\n"},
    {"stream": "build-ffmpeg: error: configure failed (see the lines above; a missing runtime"},
    {"stream": " or header is the usual cause)\n"},
    {"error": "The command '/bin/sh -c bash /build/docker/build-ffmpeg.sh' returned a non-zero code: 1",
     "errorDetail": {"code": 1}},
]


def test_build_failure_names_the_step_and_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FFSR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("ffsr.image.fetch_sources", lambda config, log: tmp_path)
    (tmp_path / f"ffmpeg-{ffmpeg_version()}.tar.xz").write_bytes(b"x")
    (tmp_path / "onnxruntime-headers").mkdir()
    events: list[str] = []
    with pytest.raises(FfsrError) as info:
        build_image(ImageConfig(backends=("onnx",), host_pip=False), api=FakeAPI(FAILING_STREAM),
                    on_progress=lambda p: events.append(f"{p.kind}: {p.text}"))
    e = info.value
    assert e.message == ("The image build failed at step 2/3: RUN bash /build/docker/build-ffmpeg.sh "
                         "--prefix /opt/ffsr/ffmpeg: build-ffmpeg: error: configure failed (see the "
                         "lines above; a missing runtime or header is the usual cause)")
    assert e.log_path and Path(e.log_path).is_file()
    assert "returned a non-zero code" in Path(e.log_path).read_text()
    assert "phase: FFmpeg configure: 5 feature flags, backends: onnx" in events


def test_full_disk_during_the_build() -> None:
    watcher = _BuildWatcher(lambda _: None, None)
    for chunk in ({"stream": "Step 7/9 : RUN pip install tensorflow\n"},
                  {"stream": "ERROR: Could not install packages due to an OSError: [Errno 28] "
                             "No space left on device\n"},
                  {"error": "The command returned a non-zero code: 1"}):
        watcher.feed(chunk)
    failure = watcher.failure()
    assert failure is not None and failure.message.startswith("The disk holding Docker's data is full")


# ---------------------------------------------------------------- the real image (docker)


W, H, N = 176, 144, 4


def run_image(tag: str, args: list[str], mounts: dict[Path, tuple[str, str]],
              entrypoint: list[str] | None = None) -> bytes:
    """Run the image with no network, its own non-root user, read-only root file system."""
    import docker

    client = docker.from_env()
    volumes = {str(host): {"bind": bind, "mode": mode} for host, (bind, mode) in mounts.items()}
    try:
        out = client.containers.run(tag, args, entrypoint=entrypoint, network_mode="none", volumes=volumes,
                                    read_only=True, remove=True, stdout=True, stderr=False)
    except docker.errors.ContainerError as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else str(e.stderr)
        pytest.fail(f"container exited {e.exit_status}: {stderr[-1500:]}")
    return bytes(out)


@pytest.mark.docker
@pytest.mark.slow
def test_image_metadata(docker_api: Any, cpu_image: str) -> None:
    info = docker_api.inspect_image(cpu_image)
    cfg = info["Config"]
    assert cfg["User"] == USER
    assert cfg["Entrypoint"] == [f"{PREFIX}/ffmpeg/bin/ffmpeg"]
    for key, value in pinned().items():
        assert cfg["Labels"][f"org.ffsr.pin.{key.lower().replace('_', '-')}"] == value
    assert cfg["Labels"][INPUTS_LABEL]
    assert run_image(cpu_image, ["-u"], {}, entrypoint=["id"]).strip() != b"0"
    buildconf = run_image(cpu_image, ["-hide_banner", "-buildconf"], {}).decode()
    for flag in ("--enable-libonnxruntime", "--enable-libtorch", "--enable-libtensorflow"):
        assert flag in buildconf


@pytest.fixture(scope="module")
def mounts(tmp_path_factory: pytest.TempPathFactory, clips: Path,
           espcn_files: dict[str, Path]) -> dict[Path, tuple[str, str]]:
    """Clip and models read-only, an output folder the image's user can write."""
    out = tmp_path_factory.mktemp("image-out")
    out.chmod(0o777)
    models = espcn_files["onnx"].parent
    for p in [models, *models.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return {clips: ("/clips", "ro"), models: ("/models", "ro"), out: ("/out", "rw")}


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_image_upscales_a_real_clip(cpu_image: str, mounts: dict[Path, tuple[str, str]],
                                    espcn_files: dict[str, Path], backend: str) -> None:
    pytest.importorskip("onnxruntime")
    from conftest import onnx_reference, torch_reference

    clip = "/clips/carphone_176x144.mp4"
    out_dir = next(host for host, (bind, _) in mounts.items() if bind == "/out")
    model = espcn_files["onnx" if backend == "onnx" else "pt"]
    if backend == "onnx":
        graph = (f"format=yuv420p,dnn_processing=dnn_backend=onnx:model=/models/{model.name}"
                 ":input=x:output=y,extractplanes=y")
        fmt, channels = "gray", 1
    else:
        graph = f"format=rgb24,dnn_processing=dnn_backend=torch:model=/models/{model.name}"
        fmt, channels = "rgb24", 3
    out_name = f"{backend}.raw"
    run_image(cpu_image, ["-v", "warning", "-y", "-i", clip, "-frames:v", str(N), "-vf", graph,
                          "-f", "rawvideo", "-pix_fmt", fmt, f"/out/{out_name}"], mounts)
    raw = (out_dir / out_name).read_bytes()
    assert len(raw) == N * (2 * H) * (2 * W) * channels, "output is not 2x the 176x144 input"
    got = np.frombuffer(raw, np.uint8).reshape(N, 2 * H, 2 * W, channels)
    # The input frames as the image's own ffmpeg decodes them (into a file: the engine's
    # log driver is not binary-safe, so never through stdout).
    decode_vf = "format=yuv420p,extractplanes=y" if backend == "onnx" else "format=rgb24"
    run_image(cpu_image, ["-v", "error", "-y", "-i", clip, "-frames:v", str(N), "-vf", decode_vf,
                          "-f", "rawvideo", "-pix_fmt", fmt, f"/out/{backend}_in.raw"], mounts)
    src = np.frombuffer((out_dir / f"{backend}_in.raw").read_bytes(), np.uint8).reshape(N, H, W, channels)
    want = onnx_reference(model, src[..., 0])[..., None] if backend == "onnx" else torch_reference(model, src)
    report = compare_8bit(got, want)
    assert report.passes, report


def test_engine_going_away_during_the_build_is_one_sentence(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """dockerd killed mid-build (seen here: the stream breaks with urllib3's ProtocolError)."""
    from urllib3.exceptions import ProtocolError

    monkeypatch.setenv("FFSR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("ffsr.image.fetch_sources", lambda config, log: tmp_path)
    (tmp_path / f"ffmpeg-{ffmpeg_version()}.tar.xz").write_bytes(b"x")
    (tmp_path / "onnxruntime-headers").mkdir()

    def stream() -> Any:
        yield {"stream": "Step 14/31 : RUN bash /build/docker/build-ffmpeg.sh\n"}
        raise ProtocolError("Connection broken: IncompleteRead(0 bytes read)")

    api = FakeAPI()
    api.build = lambda **kwargs: stream()  # type: ignore[method-assign]
    with pytest.raises(FfsrError, match=r"^The Docker engine at .* failed while trying to run the "
                                        r"build: Connection broken"):
        build_image(ImageConfig(backends=("onnx",), host_pip=False), api=api)
