#!/usr/bin/env bash
# Builds llama.cpp (CPU only) as the baseline for InferenceKit's model-runtime benchmarks.
#
# The source comes from the PyPI sdist of llama-cpp-python, which vendors a pinned llama.cpp
# under vendor/llama.cpp. Everything (sdist, source tree, build tree, binaries) lives in a
# scratch folder OUTSIDE this repository; nothing of it is ever committed.
#
#   Benchmarks/llama-cpp/build.sh                 # builds into /tmp/llama.cpp-build
#   LLAMA_CPP_BUILD_DIR=/somewhere Benchmarks/llama-cpp/build.sh
#   Benchmarks/llama-cpp/build.sh /somewhere      # same, as an argument
#
# Environment knobs: LLAMA_CPP_PY_VERSION (default 0.3.36), JOBS (default 2), NICE (default 10).
# Re-running is cheap: the download and unpack are skipped when present, cmake rebuilds
# incrementally. The binaries end up in $BUILD_DIR/build/bin; the script prints their paths.
set -euo pipefail

VERSION="${LLAMA_CPP_PY_VERSION:-0.3.36}"
BUILD_DIR="${1:-${LLAMA_CPP_BUILD_DIR:-/tmp/llama.cpp-build}}"
JOBS="${JOBS:-2}"
NICE="${NICE:-10}"
TARGETS=(llama-bench llama-batched-bench llama-perplexity llama-server llama-tokenize llama-cli llama-simple llama-eval-callback llama-quantize)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "$BUILD_DIR"
BUILD_DIR="$(cd "$BUILD_DIR" && pwd)"
case "$BUILD_DIR/" in
  "$REPO_ROOT"/*) echo "error: build dir $BUILD_DIR is inside the repository ($REPO_ROOT); pick one outside it" >&2; exit 2 ;;
esac

SUDO=""; [ "$(id -u)" = "0" ] || SUDO=sudo
need_apt=""
command -v cmake >/dev/null 2>&1 || need_apt="$need_apt cmake"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || need_apt="$need_apt g++"
command -v make >/dev/null 2>&1 || need_apt="$need_apt make"
if [ -n "$need_apt" ]; then
  echo "Installing build tools:$need_apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need_apt
fi

SRC_PARENT="$BUILD_DIR/src"
SRC="$SRC_PARENT/llama_cpp_python-$VERSION"
if [ ! -f "$SRC/vendor/llama.cpp/CMakeLists.txt" ]; then
  dl="$BUILD_DIR/download"
  mkdir -p "$dl"
  if ! ls "$dl"/llama_cpp_python-"$VERSION".tar.gz >/dev/null 2>&1; then
    echo "Downloading llama-cpp-python==$VERSION sdist ..."
    # --no-binary for this one package only: same sdist as '--no-binary :all:', but pip may use
    # wheels for the build backend it runs to read the sdist's metadata (with :all: it compiles
    # ninja from source first, minutes on two cores).
    python3 -m pip download --no-deps --no-binary llama-cpp-python -d "$dl" "llama-cpp-python==$VERSION" || {
      echo "error: 'python3 -m pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==$VERSION' failed" >&2; exit 1; }
  fi
  rm -rf "$SRC_PARENT"; mkdir -p "$SRC_PARENT"
  tar -xzf "$dl"/llama_cpp_python-"$VERSION".tar.gz -C "$SRC_PARENT"
fi
LLAMA_SRC="$SRC/vendor/llama.cpp"
[ -f "$LLAMA_SRC/CMakeLists.txt" ] || { echo "error: $LLAMA_SRC/CMakeLists.txt not found in the sdist" >&2; exit 1; }

OUT="$BUILD_DIR/build"
echo "Configuring $LLAMA_SRC -> $OUT"
nice -n "$NICE" cmake -S "$LLAMA_SRC" -B "$OUT" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENCL=OFF -DGGML_BLAS=OFF

# Build only the targets this configuration defines (names move between llama.cpp versions).
available=()
target_list="$(cmake --build "$OUT" --target help 2>/dev/null || true)"
for t in "${TARGETS[@]}"; do
  if grep -qE "^\.\.\. $t\$" <<<"$target_list"; then
    available+=("$t")
  else
    echo "note: target $t is not defined by this llama.cpp; skipped"
  fi
done
[ "${#available[@]}" -gt 0 ] || { echo "error: none of the targets ${TARGETS[*]} exist" >&2; exit 1; }
echo "Building ${available[*]} with -j $JOBS (nice $NICE)"
nice -n "$NICE" cmake --build "$OUT" --config Release -j "$JOBS" --target "${available[@]}"

# Record the vendored llama.cpp version next to the binaries.
{
  echo "llama-cpp-python $VERSION"
  git -C "$LLAMA_SRC" log -1 --format='llama.cpp commit %H (%cs) %s' 2>/dev/null || true
  grep -hE '^(int|char const \*) LLAMA_(BUILD_NUMBER|COMMIT|COMPILER|BUILD_TARGET) =' "$OUT"/common/build-info.cpp 2>/dev/null || true
} > "$OUT/bin/VERSION.txt"

echo
echo "llama.cpp (vendored by llama-cpp-python $VERSION) built in $OUT/bin:"
for t in "${available[@]}"; do
  [ -x "$OUT/bin/$t" ] && echo "  $OUT/bin/$t"
done
echo "Version info: $OUT/bin/VERSION.txt"
echo "export LLAMA_CPP_BIN=$OUT/bin"
