"""Instruction-set dispatch: every usable level agrees; forcing works or fails clearly."""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import lstmlearn
from lstmlearn import _loader

from conftest import rel_err

BASELINE = importlib.import_module("lstmlearn._core_baseline")
BUILT = _loader.built_levels()
SUPPORTED = _loader.supported_levels(BASELINE)


def run_raw(module, dtype):
    """Forward and backward through one level's raw binding."""
    B, T, F, H, L = 20, 8, 5, 33, 2
    cls = module.LSTMF32 if dtype == np.float32 else module.LSTMF64
    raw = cls(F, H, L, True)
    rng = np.random.default_rng(0)
    raw.parameters[:] = rng.uniform(-0.5, 0.5, raw.parameters.size)
    x = rng.normal(size=(B, T, F)).astype(dtype)
    zeros = np.zeros((2 * L, B, H), dtype=dtype)
    y = np.empty((B, T, 2 * H), dtype=dtype)
    h_n, c_n = np.empty_like(zeros), np.empty_like(zeros)
    raw.forward(x, zeros, zeros, None, None, y, h_n, c_n, -1)
    dx = np.empty_like(x)
    dh0, dc0 = np.empty_like(zeros), np.empty_like(zeros)
    raw.backward(rng.normal(size=y.shape).astype(dtype), None, None, dx, dh0, dc0, -1)
    return [y, h_n, c_n, dx, dh0, dc0, raw.gradients.copy()]


def test_this_platform_builds_the_expected_levels():
    import platform

    if platform.machine().lower() in ("x86_64", "amd64"):
        assert BUILT == ["baseline", "avx2", "avx512"]
    else:
        assert BUILT == ["baseline"]


def test_default_is_the_best_supported_level():
    expected = [lvl for lvl in BUILT if lvl in SUPPORTED][-1]
    if not os.environ.get(_loader.ENV_VAR):
        assert lstmlearn.config()["isa"] == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_every_usable_level_gives_the_same_results(dtype):
    usable = [lvl for lvl in BUILT if lvl in SUPPORTED]
    reference = run_raw(BASELINE, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for level in usable[1:]:
        module = importlib.import_module(f"lstmlearn._core_{level}")
        assert module.ISA == level
        for a, b in zip(run_raw(module, dtype), reference, strict=True):
            assert rel_err(a, b) <= tol, level


def force(level):
    env = dict(os.environ, **{_loader.ENV_VAR: level})
    code = "import lstmlearn; print(lstmlearn.config()['isa'])"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_forcing_a_level(level):
    result = force(level)
    if level in BUILT and level in SUPPORTED:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == level
    else:  # a level this CPU lacks (or this platform does not build)
        assert result.returncode != 0
        assert _loader.ENV_VAR in result.stderr and level in result.stderr


def test_forcing_an_unknown_level_is_a_clear_error():
    result = force("avx1024")
    assert result.returncode != 0
    assert "not a known level" in result.stderr and "baseline, avx2, avx512" in result.stderr


def test_select_level_rules():
    built = ["baseline", "avx2", "avx512"]
    assert _loader.select_level(None, built, ["baseline", "avx2", "avx512"]) == "avx512"
    assert _loader.select_level("", built, ["baseline", "avx2"]) == "avx2"
    assert _loader.select_level(None, ["baseline"], ["baseline", "avx2"]) == "baseline"
    assert _loader.select_level("AVX2", built, ["baseline", "avx2", "avx512"]) == "avx2"
    with pytest.raises(ImportError, match="this CPU does not support avx512"):
        _loader.select_level("avx512", built, ["baseline", "avx2"])
    with pytest.raises(ImportError, match="no avx2 build"):
        _loader.select_level("avx2", ["baseline"], ["baseline", "avx2"])


def test_cpu_feature_queries_are_consistent():
    if BASELINE.cpu_has_avx512():
        assert BASELINE.cpu_has_avx2()


def test_float64_is_one_build_shared_by_every_level():
    # float64 is compiled once, at the baseline level (CMakeLists.txt), so
    # every module computes it bit for bit alike; float32 is the level's own.
    usable = [lvl for lvl in BUILT if lvl in SUPPORTED]
    reference = run_raw(BASELINE, np.float64)
    for level in usable[1:]:
        module = importlib.import_module(f"lstmlearn._core_{level}")
        for a, b in zip(run_raw(module, np.float64), reference, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=level)


@pytest.mark.parametrize("level", [lvl for lvl in BUILT if lvl in SUPPORTED])
def test_each_module_reports_its_own_instruction_sets(level):
    # The bindings are compiled once, at the baseline level; what a module
    # reports about its SIMD must come from its own engine, not from them.
    module = importlib.import_module(f"lstmlearn._core_{level}")
    sets = module.simd_instruction_sets()
    assert module.ISA == level
    if level == "baseline":
        assert "AVX" not in sets, sets
    elif level == "avx2":
        assert "AVX" in sets and "AVX512" not in sets, sets
    else:
        assert "AVX512" in sets, sets
