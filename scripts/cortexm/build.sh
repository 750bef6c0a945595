#!/usr/bin/env bash
# Build TFLite Micro for Cortex-M cores, and the arena probe, OUTSIDE this repository.
#
#   scripts/cortexm/build.sh prepare                 # TFLM tree + downloads/ (offline, from git mirrors)
#   scripts/cortexm/build.sh lib   <core> <kernels>  # libtensorflow-microlite.a
#   scripts/cortexm/build.sh probe <core> <kernels>  # probe.elf (semihosting, runs under qemu)
#   scripts/cortexm/build.sh all   <core> <kernels>  # the three above
#   scripts/cortexm/build.sh plugin                  # insn_count.so: qemu plugin counting instructions
#   scripts/cortexm/build.sh commits                 # the source commits in use
#
# core: cortex-m0plus | cortex-m4 | cortex-m7 | cortex-m55;  kernels: reference | cmsis_nn.
# Output: $CORTEXM_ROOT/build/<core>-<kernels>/{lib/libtensorflow-microlite.a, probe.elf, BUILD_INFO}.
#
# Sources are git directories (bare, as the `fetch` tool returns them, or ordinary clones), named by
# environment variables; defaults are the mirrors under /work/.mirror:
#   TFLM_GIT  CMSIS_NN_GIT  CMSIS_GIT  FLATBUFFERS_GIT  GEMMLOWP_GIT  RUY_GIT  KISSFFT_GIT
# TFLM_COMMIT picks the TFLM commit (default: the mirror's HEAD); every other commit is the one that
# TFLM commit pins (its download scripts), so the build is the one TFLM's own CI would make.
# Needs: gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib, git, patch, python3.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${CORTEXM_ROOT:-/work/cortexm}"
MIRROR="${MIRROR:-/work/.mirror}"
TFLM_GIT="${TFLM_GIT:-$MIRROR/tensorflow+tflite-micro/repo}"
CMSIS_NN_GIT="${CMSIS_NN_GIT:-$MIRROR/ARM-software+CMSIS-NN/repo}"
CMSIS_GIT="${CMSIS_GIT:-$MIRROR/ARM-software+CMSIS_6/repo}"
FLATBUFFERS_GIT="${FLATBUFFERS_GIT:-$MIRROR/google+flatbuffers/repo}"
GEMMLOWP_GIT="${GEMMLOWP_GIT:-$MIRROR/google+gemmlowp/repo}"
RUY_GIT="${RUY_GIT:-$MIRROR/google+ruy/repo}"
KISSFFT_GIT="${KISSFFT_GIT:-$MIRROR/mborgerding+kissfft/repo}"
PYTHON="${PYTHON:-python3}"
JOBS="${JOBS:-2}"

TFLM="$ROOT/src/tflite-micro"
MAKEDIR="$TFLM/tensorflow/lite/micro/tools/make"
DL="$MAKEDIR/downloads"

die() { echo "build.sh: $*" >&2; exit 1; }

gitdir() {  # a bare repository or a clone -> its git directory
  if [ -d "$1/.git" ]; then echo "$1/.git"; elif [ -f "$1/HEAD" ]; then echo "$1"; else
    die "no git repository at '$1' (set the *_GIT variable to a clone or a bare mirror)"; fi
}

export_tree() {  # export_tree <git> <commit-ish> <dir>: the tree at that commit, no .git
  local g; g="$(gitdir "$1")"
  git --git-dir="$g" cat-file -e "$2^{commit}" 2>/dev/null \
    || die "commit '$2' is not in $1 (fetch a newer mirror)"
  rm -rf "$3.tmp"; mkdir -p "$3.tmp"
  git --git-dir="$g" archive "$2" | tar -x -C "$3.tmp"
  rm -rf "$3"; mv "$3.tmp" "$3"
  echo "$(git --git-dir="$g" rev-parse "$2^{commit}")"
}

pin() {  # pin <file under make/> <regex with one group>: a value TFLM's scripts name
  sed -nE "s|$2|\\1|p" "$MAKEDIR/$1" | head -1
}

patch_tree() {  # patch_tree <dir> <patch>: as TFLM's apply_patch_to_folder does (git apply)
  (cd "$1" && git apply --ignore-space-change --ignore-whitespace "$2")
}

prepare() {
  command -v git >/dev/null || die "git is missing"
  local tflm_commit; tflm_commit="${TFLM_COMMIT:-$(git --git-dir="$(gitdir "$TFLM_GIT")" rev-parse HEAD)}"
  mkdir -p "$ROOT/src"
  tflm_commit="$(export_tree "$TFLM_GIT" "$tflm_commit" "$TFLM")"
  mkdir -p "$DL"
  local nn cm fb gl ry kf
  nn="$(pin ext_libs/cmsis_nn_download.sh '^ZIP_PREFIX_NN="([0-9a-f]{40})".*')"
  cm="$(pin ext_libs/cmsis_download.sh '^ *ZIP_PREFIX="([0-9a-f]{40})".*')"
  fb="$(pin flatbuffers_download.sh '^ *ZIP_PREFIX="(v[0-9.]+)".*')"
  gl="$(pin third_party_downloads.inc '^GEMMLOWP_URL.*/([0-9a-f]{40})\.zip.*')"
  ry="$(pin third_party_downloads.inc '^RUY_URL.*/([0-9a-f]{40})\.zip.*')"
  kf="$(pin kissfft_download.sh '^ *KISSFFT_URL=.*/tags/(v[0-9]+)\.zip.*')"
  [ -n "$nn" ] && [ -n "$cm" ] && [ -n "$fb" ] && [ -n "$gl" ] && [ -n "$ry" ] && [ -n "$kf" ] \
    || die "could not read the pinned commits from TFLM's download scripts (nn=$nn cmsis=$cm fb=$fb gemmlowp=$gl ruy=$ry kissfft=$kf)"
  nn="$(export_tree "$CMSIS_NN_GIT" "$nn" "$DL/cmsis_nn")"
  cm="$(export_tree "$CMSIS_GIT" "$cm" "$DL/cmsis")"
  local fbc; fbc="$(export_tree "$FLATBUFFERS_GIT" "$fb" "$DL/flatbuffers")"
  find "$DL/flatbuffers" \( -name BUILD -o -name BUILD.bazel \) -delete
  patch_tree "$DL/flatbuffers" "$MAKEDIR/flatbuffers.patch"
  gl="$(export_tree "$GEMMLOWP_GIT" "$gl" "$DL/gemmlowp")"
  ry="$(export_tree "$RUY_GIT" "$ry" "$DL/ruy")"
  local kfc; kfc="$(export_tree "$KISSFFT_GIT" "$kf" "$DL/kissfft")"
  patch_tree "$DL/kissfft" "$TFLM/third_party/kissfft/kissfft.patch"
  rm -rf "$DL/pigweed"; mkdir -p "$DL/pigweed"     # only TFLM's tests use it
  rm -rf "$DL/gcc_embedded"; mkdir -p "$DL/gcc_embedded/bin"
  local t
  for t in gcc g++ ar as ld nm objcopy objdump size strip ranlib readelf cpp; do
    command -v "arm-none-eabi-$t" >/dev/null \
      || die "arm-none-eabi-$t is missing: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"
    ln -s "$(command -v "arm-none-eabi-$t")" "$DL/gcc_embedded/bin/arm-none-eabi-$t"
  done
  cat > "$ROOT/src/COMMITS" <<EOF
tflite-micro $tflm_commit
CMSIS-NN $nn
CMSIS_6 $cm
flatbuffers $fb $fbc (+ TFLM flatbuffers.patch)
gemmlowp $gl
ruy $ry
kissfft $kf $kfc (+ TFLM kissfft.patch)
arm-none-eabi-gcc $(arm-none-eabi-gcc -dumpversion)
EOF
  cat "$ROOT/src/COMMITS"
}

check_core() {
  case "$1" in cortex-m0plus|cortex-m4|cortex-m7|cortex-m55) ;; *)
    die "core '$1' is not one of cortex-m0plus cortex-m4 cortex-m7 cortex-m55";; esac
  case "$2" in reference|cmsis_nn) ;; *) die "kernels '$2' is not one of reference cmsis_nn";; esac
  [ -d "$DL/gcc_embedded" ] || die "run '$0 prepare' first"
}

# Code-generation flags per core. The A-profile emulation trick (see run_probe.sh) needs the code
# compiled for the M core and linked against newlib's armv7-a multilib; M55 keeps MVE (needs an FPU
# register file: softfp) and links its own v8.1-M multilib, for qemu-system-arm's mps3-an547.
# M55: Debian's binutils 2.40 rejects the conditional VCVT GCC 12 emits in IT blocks with MVE
# ("vcvtne.f32.s32": read as MVE's VCVTN); no if-conversion avoids it (code layout only).
platform_flags() {
  local f="-DTF_LITE_MCU_DEBUG_LOG -mcpu=$1 -mthumb -funsigned-char -mlittle-endian -fomit-frame-pointer"
  case "$1" in
    cortex-m55) echo "$f -mfloat-abi=softfp -mfpu=auto -fno-if-conversion -fno-if-conversion2";;
    *)          echo "$f -mfloat-abi=soft";;
  esac
}

lib() {
  check_core "$1" "$2"
  local out="$ROOT/build/$1-$2"; mkdir -p "$out"
  local kopt=""; [ "$2" = cmsis_nn ] && kopt="OPTIMIZED_KERNEL_DIR=cmsis_nn"
  # The Makefile calls python3 (specialize_files.py); PYTHON's directory goes first on PATH.
  local pybin; pybin="$(dirname "$(command -v "$PYTHON")")"
  (cd "$TFLM" && PATH="$pybin:$PATH" nice -n 10 make -j"$JOBS" \
     -f tensorflow/lite/micro/tools/make/Makefile \
     TARGET=cortex_m_qemu TARGET_ARCH="$1" $kopt BUILD_TYPE=release_with_logs \
     PLATFORM_FLAGS="$(platform_flags "$1")" \
     GENDIR="$out/gen/" microlite)
  mkdir -p "$out/lib"
  cp "$(find "$out/gen" -name libtensorflow-microlite.a | head -1)" "$out/lib/"
  { echo "core $1"; echo "kernels $2"; echo "platform_flags $(platform_flags "$1")";
    cat "$ROOT/src/COMMITS"; } > "$out/BUILD_INFO"
  echo "built $out/lib/libtensorflow-microlite.a"
}

probe() {
  check_core "$1" "$2"
  local out="$ROOT/build/$1-$2"
  [ -f "$out/lib/libtensorflow-microlite.a" ] || die "no library in $out: run '$0 lib $1 $2'"
  local inc=(-I"$TFLM" -I"$DL/flatbuffers/include" -I"$DL/gemmlowp" -I"$DL/ruy" -I"$DL/kissfft")
  local defs=(-DTF_LITE_STATIC_MEMORY -DTF_LITE_DISABLE_X86_NEON -DKERNELS_OPTIMIZED_FOR_SPEED -DNDEBUG)
  [ "$2" = cmsis_nn ] && defs+=(-DCMSIS_NN)
  local link
  case "$1" in
    # M55: its own start-up and memory map, for qemu-system-arm -M mps3-an547
    cortex-m55) link=(-mcpu=cortex-m55 -mfloat-abi=softfp --specs=rdimon.specs -T "$HERE/mps3_an547.ld");;
    # newlib's armv7-a multilib (ARM state, semihosting through svc): runs under qemu-arm -cpu cortex-a15
    *)          link=(-march=armv7-a -mfloat-abi=soft --specs=rdimon.specs -Wl,--no-warn-mismatch);;
  esac
  # shellcheck disable=SC2046
  arm-none-eabi-g++ $(platform_flags "$1") -std=c++17 -O2 -fno-rtti -fno-exceptions \
    -fno-threadsafe-statics -ffunction-sections -fdata-sections "${defs[@]}" "${inc[@]}" -c "$HERE/probe.cc" -o "$out/probe.o"
  local objs=("$out/probe.o")
  if [ "$1" = cortex-m55 ]; then  # reset vector and FPU/MVE enable for the mps3-an547 board
    # shellcheck disable=SC2046
    arm-none-eabi-gcc $(platform_flags "$1") -O2 -c "$HERE/m55_start.c" -o "$out/m55_start.o"
    objs+=("$out/m55_start.o")
  fi
  arm-none-eabi-g++ "${link[@]}" "${objs[@]}" "$out/lib/libtensorflow-microlite.a" \
    -Wl,--gc-sections -lm -o "$out/probe.elf"
  echo "built $out/probe.elf"
}

commits() { cat "$ROOT/src/COMMITS"; }

plugin() {  # host gcc: a shared object qemu-arm / qemu-system-arm load with -plugin
  mkdir -p "$ROOT/build"
  gcc -shared -fPIC -O2 -o "$ROOT/build/insn_count.so" "$HERE/insn_count.c"
  echo "built $ROOT/build/insn_count.so"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  prepare) prepare;;
  lib) lib "$@";;
  probe) probe "$@";;
  all) [ -d "$DL/gcc_embedded" ] || prepare; lib "$@"; probe "$@";;
  plugin) plugin;;
  commits) commits;;
  *) sed -n '2,19p' "$0"; exit 2;;
esac
