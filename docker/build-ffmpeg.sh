#!/usr/bin/env bash
# THE FFmpeg build of ffsr: used unchanged by `ffsr build-ffmpeg` (native, into a cache
# directory) and by the Docker image's builder stage.
#
# It builds FFmpeg (version and sha256 pinned in versions.env) with the DNN backends
# whose runtimes come from PyPI wheels installed in the Python environment given by
# --python (see docker/README.md for where each library and header comes from),
# applies docker/patches/*.patch (fixes for FFmpeg's DNN backends), and installs
# ffmpeg/ffprobe into --prefix with an RPATH to those runtime libraries.
#
# Progress: every phase starts with a line "==> PHASE: text" (ffsr parses these).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

prefix=""; backends="onnx,openvino,torch,tensorflow"; python=python3; cuda=0
skip_patches=""; source_spec="debian"; cache="${XDG_CACHE_HOME:-$HOME/.cache}/ffsr/sources"; jobs=$(nproc)
usage() {
  cat <<EOF
usage: build-ffmpeg.sh --prefix DIR [--backends onnx,openvino,torch,tensorflow|none] [--python PY]
                       [--cuda] [--source debian|TARBALL|URL] [--cache DIR] [--jobs N]
                       [--skip-patches 0001,0002]   (to prove what a patch fixes)
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --backends) backends=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --cuda) cuda=1; shift ;;
    --source) source_spec=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --skip-patches) skip_patches=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[ -n "$prefix" ] || { usage >&2; exit 2; }
[ "$backends" = none ] && backends=""
die() { echo "build-ffmpeg: error: $*" >&2; exit 1; }
phase() { echo "==> $1: $2"; }
has_backend() { case ",$backends," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
for b in ${backends//,/ }; do
  case "$b" in onnx|openvino|torch|tensorflow) ;; *) die "unknown backend '$b' (choose from onnx, openvino, torch, tensorflow)" ;; esac
done

phase check "compilers and headers"
missing_apt=()
command -v cc >/dev/null || missing_apt+=(build-essential)
command -v make >/dev/null || missing_apt+=(make)
command -v nasm >/dev/null || missing_apt+=(nasm)
command -v pkg-config >/dev/null || missing_apt+=(pkg-config)
command -v xz >/dev/null || missing_apt+=(xz-utils)
pkg-config --exists x264 2>/dev/null || missing_apt+=(libx264-dev)
pkg-config --exists zlib 2>/dev/null || missing_apt+=(zlib1g-dev)
# Encoders: HEVC (10-bit capable), AV1, VP9 and Opus for .webm.
pkg-config --exists x265 2>/dev/null || missing_apt+=(libx265-dev)
pkg-config --exists SvtAv1Enc 2>/dev/null || missing_apt+=(libsvtav1enc-dev)
pkg-config --exists vpx 2>/dev/null || missing_apt+=(libvpx-dev)
pkg-config --exists opus 2>/dev/null || missing_apt+=(libopus-dev)
if [ "${#missing_apt[@]}" -gt 0 ]; then
  die "missing build tools or headers; install them with: apt-get install -y ${missing_apt[*]}"
fi
if has_backend torch; then command -v c++ >/dev/null || die "the torch backend needs a C++ compiler: apt-get install -y g++"; fi

# Locate the runtime wheels in the Python environment.
pyloc() {  # module -> directory of the installed package
  "$python" -c "import importlib.util,sys,os; s=importlib.util.find_spec(sys.argv[1]); print(os.path.dirname(s.origin) if s and s.origin else '')" "$1" 2>/dev/null || true
}
extra_cflags=(); extra_ldflags=(); extra_libs=(); rpaths=(); flags=()
linkdir="$prefix/lib/ffsr-link"   # symlinks giving the wheel libraries the names configure expects
rm -rf "$linkdir"; mkdir -p "$linkdir"
rpaths+=("$linkdir")
link_lib() {  # real-library link-name: the name configure links with, plus the SONAME
  ln -sf "$1" "$linkdir/$2"
  local soname
  soname=$(readelf -d "$1" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  if [ -n "$soname" ] && [ ! -e "$(dirname "$1")/$soname" ]; then ln -sf "$1" "$linkdir/$soname"; fi
}

if has_backend onnx; then
  ort=$(pyloc onnxruntime)
  [ -n "$ort" ] || die "the onnx backend needs the onnxruntime wheel: $python -m pip install onnxruntime==$ONNXRUNTIME_VERSION (or onnxruntime-gpu)"
  lib=$(ls "$ort"/capi/libonnxruntime.so.* 2>/dev/null | head -n1)
  [ -n "$lib" ] || die "no libonnxruntime.so.* in $ort/capi"
  link_lib "$lib" libonnxruntime.so
  rpaths+=("$ort/capi")
  flags+=(--enable-libonnxruntime)
fi
if has_backend openvino; then
  ov=$(pyloc openvino)
  [ -n "$ov" ] || die "the openvino backend needs the openvino wheel: $python -m pip install openvino==$OPENVINO_VERSION"
  ov_c=$(ls "$ov"/libs/libopenvino_c.so.* 2>/dev/null | head -n1)
  ov_core=$(ls "$ov"/libs/libopenvino.so.* 2>/dev/null | head -n1)
  [ -n "$ov_c" ] && [ -n "$ov_core" ] || die "no libopenvino_c.so.* / libopenvino.so.* in $ov/libs"
  [ -f "$ov/include/openvino/c/openvino.h" ] || die "the openvino wheel has no C headers ($ov/include/openvino/c/openvino.h)"
  link_lib "$ov_c" libopenvino_c.so
  link_lib "$ov_core" libopenvino.so
  # The wheel has no pkg-config file, which FFmpeg's configure looks for: write one.
  mkdir -p "$prefix/lib/ffsr-pkgconfig"
  cat > "$prefix/lib/ffsr-pkgconfig/openvino.pc" <<PC
Name: openvino
Description: OpenVINO C API from the openvino wheel (written by ffsr's build-ffmpeg.sh)
Version: $("$python" -c 'import importlib.metadata as m; print(m.version("openvino"))' 2>/dev/null || echo 0)
Libs: -L$linkdir -lopenvino_c -lopenvino
Cflags: -I$ov/include
PC
  export PKG_CONFIG_PATH="$prefix/lib/ffsr-pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  rpaths+=("$ov/libs")
  flags+=(--enable-libopenvino)
fi
if has_backend torch; then
  tdir=$(pyloc torch)
  [ -n "$tdir" ] || die "the torch backend needs the torch wheel: $python -m pip install torch==$TORCH_VERSION"
  extra_cflags+=("-I$tdir/include" "-I$tdir/include/torch/csrc/api/include")
  extra_ldflags+=("-L$tdir/lib")
  if [ "$cuda" = 1 ]; then
    [ -f "$tdir/lib/libtorch_cuda.so" ] || die "--cuda needs a CUDA build of torch (no libtorch_cuda.so in $tdir/lib)"
    # Force the CUDA half of LibTorch to load: nothing references it by symbol.
    extra_ldflags+=("-Wl,--no-as-needed" "-ltorch_cuda" "-lc10_cuda" "-Wl,--as-needed")
  fi
  rpaths+=("$tdir/lib")
  flags+=(--enable-libtorch)
fi
if has_backend tensorflow; then
  tf=$(pyloc tensorflow)
  [ -n "$tf" ] || die "the tensorflow backend needs the tensorflow wheel: $python -m pip install tensorflow==$TENSORFLOW_VERSION"
  # The TF C API is split across two libraries; configure asks for -ltensorflow.
  link_lib "$tf/libtensorflow_cc.so.2" libtensorflow.so
  link_lib "$tf/libtensorflow_framework.so.2" libtensorflow_framework.so
  extra_cflags+=("-I$tf/include")
  extra_libs+=("-ltensorflow_framework")
  rpaths+=("$tf")
  flags+=(--enable-libtensorflow)
fi
extra_ldflags+=("-L$linkdir")
for r in "${rpaths[@]}"; do extra_ldflags+=("-Wl,-rpath,$r"); done
if [ "$cuda" = 1 ]; then
  pkg-config --exists ffnvcodec || die "--cuda needs the NVIDIA codec headers: apt-get install -y libffmpeg-nvenc-dev"
  flags+=(--enable-ffnvcodec --enable-nvenc --enable-nvdec --enable-cuvid
          --enable-encoder=h264_nvenc,hevc_nvenc,av1_nvenc
          --enable-decoder=h264_cuvid,hevc_cuvid,vp9_cuvid,av1_cuvid
          --enable-hwaccel=h264_nvdec,hevc_nvdec,vp9_nvdec,av1_nvdec
          --enable-filter=scale_cuda,hwupload_cuda,hwdownload)
fi
if pkg-config --exists dav1d 2>/dev/null; then flags+=(--enable-libdav1d --enable-decoder=libdav1d); fi

phase fetch "FFmpeg $FFMPEG_VERSION source"
tarball=$(FFSR_WITH_ONNX=$(has_backend onnx && echo 1 || echo 0) "$here/fetch-sources.sh" "$cache" "$source_spec" | tail -n1)
if has_backend onnx; then extra_cflags+=("-I$cache/onnxruntime-headers/include"); fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ffsr-ffmpeg-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xf "$tarball"
src="$work/ffmpeg-$FFMPEG_VERSION"

phase patch "DNN backend fixes"
for p in "$here"/patches/*.patch; do
  [ -e "$p" ] || continue
  case ",$skip_patches," in *",$(basename "$p" | cut -c1-4),"*) echo "    skipped $(basename "$p")"; continue ;; esac
  echo "    $(basename "$p")"
  patch -d "$src" -p1 --quiet --forward < "$p" || die "patch $(basename "$p") does not apply to FFmpeg $FFMPEG_VERSION"
done

phase configure "$(echo "${flags[*]}" | tr ' ' '\n' | grep -c . || true) feature flags, backends: ${backends:-none}"
# A minimal configuration: what a video upscaler reads, filters and writes.
components=(
  --disable-everything --disable-doc --disable-debug --disable-ffplay
  --enable-gpl --enable-libx264 --enable-libx265 --enable-libsvtav1 --enable-libvpx --enable-libopus --enable-zlib
  --enable-protocol=file,pipe
  --enable-demuxer=yuv4mpegpipe,mov,matroska,gif,apng,image2,image2pipe,image_png_pipe,rawvideo,h264,hevc,ivf,wav,aac,mp3,ogg,flac,srt,ass
  --enable-muxer=yuv4mpegpipe,mp4,mov,matroska,webm,gif,apng,image2,rawvideo,null,framemd5,framecrc,md5,wav,adts,srt,ass
  --enable-decoder=rawvideo,wrapped_avframe,h264,hevc,vp8,vp9,png,apng,gif,mjpeg,ffv1,ffvhuff,mpeg4,mpeg2video,aac,mp3,opus,vorbis,flac,pcm_s16le,pcm_s24le,pcm_f32le,pcm_u8,ass,ssa,subrip,srt,mov_text,webvtt
  --enable-encoder=rawvideo,libx264,libx265,libsvtav1,libvpx_vp9,libopus,ffv1,ffvhuff,png,apng,gif,aac,pcm_s16le,wrapped_avframe,mov_text,ass,ssa,subrip,srt,webvtt,flac
  --enable-parser=h264,hevc,vp8,vp9,av1,png,gif,aac,mpegaudio,opus,vorbis,flac,mjpeg
  --enable-bsfs
  --enable-indev=lavfi
  --enable-filter=sr,dnn_processing,extractplanes,mergeplanes,scale,format,minterpolate,fps,framerate,mpdecimate,loop,psnr,ssim,split,asplit,trim,atrim,setpts,asetpts,pad,crop,alphaextract,alphamerge,premultiply,unpremultiply,palettegen,paletteuse,null,anull,aformat,aresample,copy,yadif,bwdif,setsar,setdar,settb,showinfo,select,concat,overlay,testsrc,testsrc2,color,nullsrc,sine,anullsrc,fifo,tpad
)
(cd "$src" && ./configure --prefix="$prefix" \
  --extra-cflags="${extra_cflags[*]:-}" --extra-cxxflags="${extra_cflags[*]:-}" \
  --extra-ldflags="${extra_ldflags[*]:-}" --extra-libs="${extra_libs[*]:-}" \
  "${components[@]}" "${flags[@]}" > "$work/configure.log" 2>&1) || {
  tail -n 30 "$src/ffbuild/config.log" >&2 || true
  die "configure failed (see the lines above; a missing runtime or header is the usual cause)"
}

phase compile "make -j$jobs"
(cd "$src" && make -j"$jobs" > "$work/make.log" 2>&1) || { tail -n 40 "$work/make.log" >&2; die "compilation failed"; }

phase install "$prefix"
(cd "$src" && make install > "$work/install.log" 2>&1) || { tail -n 20 "$work/install.log" >&2; die "make install failed"; }
rm -rf "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/ffsr-pkgconfig" "$prefix/share"
find "$prefix/lib" -maxdepth 1 -name '*.a' -delete
"$prefix/bin/ffmpeg" -hide_banner -version > /dev/null || die "the built ffmpeg does not start"
phase done "$prefix/bin/ffmpeg"
