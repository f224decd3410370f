#!/usr/bin/env bash
# Development build: compiles the extension into build/dev with CMake and
# links the modules into python/lstmlearn, so that `PYTHONPATH=python` runs the
# tree as it is. Usage: tools/dev-build.sh [levels], e.g. "baseline;avx512".
# Needs pybind11, cmeel-eigen and ninja in the current Python environment.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
levels="${1:-}"
python="${PYTHON:-python}"
cmake -S "$root" -B "$root/build/dev" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v "$python")" \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" \
  -DLSTMLEARN_ONLY_LEVELS="$levels" >/dev/null
cmake --build "$root/build/dev" -j "${JOBS:-2}"
for so in "$root"/build/dev/_core_*.so; do
  ln -sf "$so" "$root/python/lstmlearn/$(basename "$so")"
done
echo "built: $(cd "$root/build/dev" && ls _core_*.so | tr '\n' ' ')"
