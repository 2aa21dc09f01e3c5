#!/usr/bin/env bash
# Fetch what the FFmpeg build needs into a cache directory, every file checked:
#   - the FFmpeg release tarball (pinned sha256 in versions.env), from a local file,
#     a URL (the FFmpeg website for real users), or Debian's archive (the signed
#     upstream tarball, shipped as the `ffmpeg` source package in sid);
#   - the ONNX Runtime C headers (Debian sid's libonnxruntime-dev, unpacked privately:
#     the PyPI wheel has the library but not the headers);
#   - with FFSR_WITH_NVENC=1, the NVIDIA codec headers package (Debian sid's
#     libffmpeg-nvenc-dev, version pinned; apt checks its hash) for CUDA image builds.
# Debian's archive is reached through the mirror already configured on this machine;
# no host name is hard-coded here.
#
# Usage: fetch-sources.sh CACHE_DIR [ffmpeg-source]
#   ffmpeg-source: "debian" (default), a path to a tarball, or an http(s) URL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${1:?usage: fetch-sources.sh CACHE_DIR [debian|PATH|URL]}
source_spec=${2:-${FFSR_FFMPEG_SOURCE:-debian}}
mkdir -p "$cache"
tarball="$cache/ffmpeg-$FFMPEG_VERSION.tar.xz"

die() { echo "fetch-sources: $*" >&2; exit 1; }

check_sha256() {  # file expected
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { rm -f "$1"; die "sha256 mismatch for $(basename "$1"): expected $2, got $got (file removed)"; }
}

# A private apt configuration: a deb-src/deb entry for sid on the configured mirror,
# with its own lists directory so the system's apt state is never touched.
debian_mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || die "no Debian mirror configured in /etc/apt (needed to fetch from Debian's archive)"
  echo "$m"
}

sid_apt() {  # apt-get args... with the private sid configuration
  local d="$cache/apt-sid"
  if [ ! -f "$d/.updated" ]; then
    mkdir -p "$d/lists/partial" "$d/archives/partial"
    local m; m=$(debian_mirror)
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s sid main\ndeb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s sid main\n' "$m" "$m" > "$d/sources.list"
    apt-get -q -o APT::Sandbox::User=root -o Dir::Etc::sourcelist="$d/sources.list" -o Dir::Etc::sourceparts=- \
      -o Dir::State::Lists="$d/lists" -o Dir::Cache::Archives="$d/archives" update >/dev/null \
      || die "apt-get update for Debian sid failed (is the Debian archive reachable?)"
    touch "$d/.updated"
  fi
  apt-get -q -o APT::Sandbox::User=root -o Dir::Etc::sourcelist="$d/sources.list" -o Dir::Etc::sourceparts=- \
    -o Dir::State::Lists="$d/lists" -o Dir::Cache::Archives="$d/archives" "$@"
}

download() {  # url dest
  if command -v curl >/dev/null; then curl -fsSL --retry 3 -o "$2.part" "$1"
  else python3 -c 'import sys,urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2.part"; fi
  mv "$2.part" "$2"
}

fetch_ffmpeg() {
  if [ -f "$tarball" ]; then check_sha256 "$tarball" "$FFMPEG_SHA256"; return; fi
  case "$source_spec" in
    debian)
      local line url
      line=$(cd "$cache" && sid_apt source --print-uris ffmpeg | grep "ffmpeg_${FFMPEG_VERSION}.orig.tar.xz'") \
        || die "Debian's archive has no ffmpeg_${FFMPEG_VERSION}.orig.tar.xz (pass a tarball path or URL instead)"
      url=$(echo "$line" | cut -d"'" -f2)
      echo "fetch-sources: downloading FFmpeg $FFMPEG_VERSION from Debian's archive" >&2
      download "$url" "$tarball" ;;
    http://*|https://*)
      echo "fetch-sources: downloading $source_spec" >&2
      download "$source_spec" "$tarball" ;;
    *)
      [ -f "$source_spec" ] || die "FFmpeg source tarball not found: $source_spec"
      cp "$source_spec" "$tarball.part" && mv "$tarball.part" "$tarball" ;;
  esac
  check_sha256 "$tarball" "$FFMPEG_SHA256"
}

fetch_onnxruntime_headers() {
  local dest="$cache/onnxruntime-headers"
  [ -f "$dest/include/onnxruntime_c_api.h" ] && return
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && sid_apt download libonnxruntime-dev >/dev/null) || die "could not download libonnxruntime-dev from Debian sid"
  dpkg -x "$tmp"/libonnxruntime-dev_*.deb "$tmp/x"
  local h; h=$(dirname "$(find "$tmp/x" -name onnxruntime_c_api.h | head -n1)")
  [ -n "$h" ] && [ -d "$h" ] || die "libonnxruntime-dev has no onnxruntime_c_api.h"
  mkdir -p "$dest.part/include" && cp -r "$h"/. "$dest.part/include/" && mv "$dest.part" "$dest"
  rm -rf "$tmp"
}

# NVIDIA codec headers (ffnvcodec) for --cuda builds, as Debian's header-only package:
# bookworm's 11.1.5.2 is older than FFmpeg 9 accepts (>= 11.1.5.3), sid has the pinned one.
fetch_nvenc_headers() {
  local dest="$cache/nvenc" deb="libffmpeg-nvenc-dev_${FFNVCODEC_VERSION}_all.deb"
  [ -f "$dest/$deb" ] && return
  mkdir -p "$dest"
  (cd "$dest" && sid_apt download "libffmpeg-nvenc-dev=$FFNVCODEC_VERSION" >/dev/null) \
    || die "could not download libffmpeg-nvenc-dev $FFNVCODEC_VERSION from Debian sid"
  [ -f "$dest/$deb" ] || die "Debian sid gave no $deb"
}

fetch_ffmpeg
if [ "${FFSR_WITH_ONNX:-1}" = 1 ]; then fetch_onnxruntime_headers; fi
if [ "${FFSR_WITH_NVENC:-0}" = 1 ]; then fetch_nvenc_headers; fi
echo "$tarball"
