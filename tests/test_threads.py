"""The engine's thread count: the default rule, the thread limit, threadpoolctl.

The rule (python/lstmlearn/_threads.py): LSTMLEARN_NUM_THREADS, else
OMP_NUM_THREADS, else the cgroup CPU quota or the affinity mask; the engine's
process-wide limit, set by threadpoolctl, caps every call.
"""

import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import ThreadpoolController, threadpool_info, threadpool_limits

import lstmlearn
from lstmlearn import LSTMRegressor, _engine, _threads
from lstmlearn.estimators import _threads as estimator_threads
from lstmlearn.nn import LSTM

PYTHON_DIR = str(Path(lstmlearn.__file__).resolve().parent.parent)


@pytest.fixture
def no_env(monkeypatch):
    """No thread variable set, and no limit (the test may set either)."""
    monkeypatch.delenv(_threads.ENV_VAR, raising=False)
    monkeypatch.delenv(_threads.OMP_VAR, raising=False)
    assert _engine.core.thread_limit() == 0
    yield monkeypatch
    _engine.core.set_thread_limit(0)


def cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# -- the rule ----------------------------------------------------------------


def test_lstmlearn_num_threads_comes_first(no_env):
    no_env.setenv("LSTMLEARN_NUM_THREADS", "3")
    no_env.setenv("OMP_NUM_THREADS", "1")
    assert _threads.default_threads() == (3, "LSTMLEARN_NUM_THREADS")
    assert estimator_threads(None) == 3


def test_omp_num_threads_comes_next(no_env):
    no_env.setenv("OMP_NUM_THREADS", "1")
    assert _threads.default_threads() == (1, "OMP_NUM_THREADS")
    assert estimator_threads(None) == 1
    # One count per nesting level: the outermost applies.
    no_env.setenv("OMP_NUM_THREADS", "5,2")
    assert _threads.default_threads() == (5, "OMP_NUM_THREADS")


def test_without_variables_the_usable_cpus(no_env):
    chosen = _threads.default_threads()
    assert chosen == _threads.cpu_count()
    assert chosen.rule in ("affinity mask", "cgroup CPU quota", "CPU count")
    assert 1 <= chosen.count <= cpus()
    assert estimator_threads(None) == chosen.count


def test_a_bad_value_is_ignored_with_a_warning(no_env):
    no_env.setenv("LSTMLEARN_NUM_THREADS", "all")
    no_env.setenv("OMP_NUM_THREADS", "2")
    with pytest.warns(RuntimeWarning, match="LSTMLEARN_NUM_THREADS='all' is not a positive"):
        assert _threads.default_threads() == (2, "OMP_NUM_THREADS")
    no_env.setenv("OMP_NUM_THREADS", "0")
    no_env.delenv("LSTMLEARN_NUM_THREADS")
    with pytest.warns(RuntimeWarning, match="OMP_NUM_THREADS='0'"):
        assert _threads.default_threads() == _threads.cpu_count()


def test_negative_n_jobs_count_back_from_the_cpus_as_joblib(no_env):
    # Environment variables choose the default only; -1 means every CPU.
    no_env.setenv("OMP_NUM_THREADS", "1")
    n = _threads.cpu_count().count
    assert estimator_threads(-1) == n
    assert estimator_threads(-2) == max(1, n - 1)
    assert estimator_threads(-1000) == 1
    assert estimator_threads(7) == 7


def test_the_quota_wins_when_lower_than_the_affinity_mask(no_env):
    no_env.setattr(_threads, "_affinity", lambda: _threads.Threads(8, "affinity mask"))
    no_env.setattr(_threads, "_cached_quota", lambda: 3)
    assert _threads.cpu_count() == (3, "cgroup CPU quota")
    no_env.setattr(_threads, "_cached_quota", lambda: 16)
    assert _threads.cpu_count() == (8, "affinity mask")
    no_env.setattr(_threads, "_cached_quota", lambda: None)
    assert _threads.default_threads() == (8, "affinity mask")


def test_nn_lstm_follows_the_same_rule(no_env):
    lstm = LSTM(2, 3, random_state=0)
    assert lstm.n_threads is None
    no_env.setenv("OMP_NUM_THREADS", "1")
    assert lstm._threads(None) == 1
    assert lstm._threads(-1) == _threads.cpu_count().count
    assert LSTM(2, 3, n_threads=2)._threads(None) == 2


def test_show_config_says_which_rule_chose(no_env):
    no_env.setenv("OMP_NUM_THREADS", "1")
    out = io.StringIO()
    lstmlearn.show_config(file=out)
    c = lstmlearn.config()
    assert (c["threads"], c["threads_rule"], c["thread_limit"]) == (1, "OMP_NUM_THREADS", None)
    assert "threads         : 1 " in out.getvalue()
    assert "OMP_NUM_THREADS" in out.getvalue()
    with threadpool_limits(limits=1, user_api="lstmlearn"):
        no_env.setenv("OMP_NUM_THREADS", "2")
        c = lstmlearn.config()
        assert (c["threads"], c["threads_rule"], c["thread_limit"]) == (
            1,
            "thread limit (threadpoolctl)",
            1,
        )


# -- cgroup quotas -----------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_cpu_max(tmp_path):
    write(tmp_path / "cpu.max", "150000 100000\n")
    assert _threads.cgroup_quota(tmp_path, "0::/\n") == 2  # 1.5 CPUs, rounded up
    write(tmp_path / "cpu.max", "max 100000\n")
    assert _threads.cgroup_quota(tmp_path, "0::/\n") is None
    write(tmp_path / "cpu.max", "20000 100000\n")
    assert _threads.cgroup_quota(tmp_path, "0::/\n") == 1  # never 0


def test_cgroup_v2_the_tightest_of_the_process_cgroup_and_its_parents(tmp_path):
    write(tmp_path / "cpu.max", "max 100000\n")
    write(tmp_path / "work.slice" / "cpu.max", "300000 100000\n")
    write(tmp_path / "work.slice" / "job" / "cpu.max", "max 100000\n")
    assert _threads.cgroup_quota(tmp_path, "0::/work.slice/job\n") == 3
    # A cgroup path not visible here (another namespace): the mount's root.
    assert _threads.cgroup_quota(tmp_path, "0::/elsewhere\n") is None


def test_cgroup_v1_cfs_quota(tmp_path):
    write(tmp_path / "cpu" / "cpu.cfs_quota_us", "250000\n")
    write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    proc = "2:cpuacct:/\n1:cpu:/\n0::/\n"
    assert _threads.cgroup_quota(tmp_path, proc) == 3
    write(tmp_path / "cpu" / "cpu.cfs_quota_us", "-1\n")
    assert _threads.cgroup_quota(tmp_path, proc) is None
    assert _threads.cgroup_quota(tmp_path / "missing", proc) is None


# -- the thread limit and threadpoolctl --------------------------------------


def engine_info():
    return [i for i in threadpool_info() if i["internal_api"] == "lstmlearn"]


def test_threadpool_info_sees_the_engine_in_use(no_env):
    (info,) = engine_info()  # once: the loaded baseline module runs nothing
    assert info["user_api"] == "lstmlearn"
    assert info["prefix"] == f"_core_{_engine.level}" and info["isa"] == _engine.level
    assert Path(info["filepath"]).resolve() == Path(_engine.core.__file__).resolve()
    assert info["num_threads"] == _threads.cpu_count().count
    no_env.setenv("OMP_NUM_THREADS", "1")
    assert engine_info()[0]["num_threads"] == 1


def test_threadpool_limits_caps_every_call_and_restores(no_env):
    core = _engine.core
    assert core.resolve_threads(8) == 8
    with threadpool_limits(limits=1):
        assert core.thread_limit() == 1
        assert engine_info()[0]["num_threads"] == 1
        assert core.resolve_threads(8) == 1 and core.resolve_threads(-1) == 1
        assert estimator_threads(None) == 1
        with threadpool_limits(limits=3, user_api="lstmlearn"):
            assert core.resolve_threads(8) == 3
        assert core.thread_limit() == 1
    # No limit before, none after: an explicit request above the default runs again.
    assert core.thread_limit() == 0 and core.resolve_threads(8) == 8


def test_threadpool_limits_restores_a_limit_set_before(no_env):
    ThreadpoolController().select(internal_api="lstmlearn").limit(limits=2)
    assert _engine.core.thread_limit() == 2
    with threadpool_limits(limits=1):
        assert _engine.core.thread_limit() == 1
    assert _engine.core.thread_limit() == 2


def test_other_user_apis_leave_the_engine_alone(no_env):
    with threadpool_limits(limits=1, user_api="blas"):
        assert _engine.core.thread_limit() == 0


def test_a_limited_fit_is_bitwise_the_unlimited_fit(no_env):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 6, 2)), rng.normal(size=64)
    est = dict(hidden_layer_sizes=8, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        free = LSTMRegressor(n_jobs=2, **est).fit(X, y)
        with threadpool_limits(limits=1):
            capped = LSTMRegressor(n_jobs=2, **est).fit(X, y)
    assert free.predict(X).tobytes() == capped.predict(X).tobytes()


SEEN = """
import json, os, warnings
import numpy as np
from threadpoolctl import threadpool_limits
import lstmlearn
from lstmlearn import LSTMRegressor, _engine
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
X, y = rng.normal(size=(256, 8, 4)), rng.normal(size=256)
def fit(n_jobs):
    LSTMRegressor(hidden_layer_sizes=32, max_iter=2, random_state=0, n_jobs=n_jobs).fit(X, y)
    return _engine.core.pool_size()
seen = {"default": lstmlearn.config()["threads"]}
seen["after_default_fit"] = fit(None)
with threadpool_limits(limits=1):
    seen["after_limited_fit"] = fit(2)
seen["after_free_fit"] = fit(2)
print(json.dumps(seen))
"""


def test_the_engine_starts_no_threads_beyond_what_it_is_allowed():
    # A fresh process, since the pool only grows: pool_size() counts the
    # compute threads started so far besides the caller's.
    env = {k: v for k, v in os.environ.items() if k != _threads.ENV_VAR}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=PYTHON_DIR)
    out = subprocess.run(
        [sys.executable, "-c", SEEN], env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout)
    assert seen == {
        "default": 1,
        "after_default_fit": 0,
        "after_limited_fit": 0,
        "after_free_fit": 1,
    }, out.stderr


def test_an_idle_pool_does_not_burn_cpu():
    # Pool threads spin for microseconds after a job, then sleep; a second of
    # idling costs next to nothing (about 1 ms in 2 s on the development
    # machine; the bound leaves room for a busy CI runner).
    lstm = LSTM(4, 32, random_state=0, n_threads=2)
    lstm.forward(np.zeros((64, 10, 4), np.float32), n_threads=2)
    assert _engine.core.pool_size() >= 1
    before = time.process_time()
    time.sleep(1.0)
    assert time.process_time() - before < 0.05


def test_the_limit_is_exported_for_ctypes():
    import ctypes

    lib = ctypes.CDLL(_engine.core.__file__)
    try:
        lib.lstmlearn_set_thread_limit(4)
        assert lib.lstmlearn_get_thread_limit() == 4 == _engine.core.thread_limit()
    finally:
        lib.lstmlearn_set_thread_limit(0)
    assert _engine.core.thread_limit() == 0
