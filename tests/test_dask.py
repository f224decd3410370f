"""lstmlearn on a real Dask cluster: a local one with two worker processes.

A grid search through joblib's Dask backend gives the sequential search's
results bit for bit; dask.array's map_blocks predicts as a local predict does;
each worker's engine runs on the threads its environment allows (Dask's nanny
sets OMP_NUM_THREADS=1); and a worker killed mid-search makes the search
finish or fail, never return partial results.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
joblib = pytest.importorskip("joblib")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import lstmlearn  # noqa: E402
from lstmlearn import LSTMRegressor  # noqa: E402

FutureCancelledError = distributed.client.FutureCancelledError
KilledWorker = distributed.scheduler.KilledWorker
# Where lstmlearn was imported from, for subprocesses (a source tree or site-packages).
PACKAGE_PARENT = str(Path(lstmlearn.__file__).resolve().parent.parent)

pytestmark = [
    pytest.mark.dask,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

GRID = {"hidden_layer_sizes": [4, 8], "learning_rate": [1e-3, 1e-2]}
TIMINGS = ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def data(n=96, T=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 2)).astype(np.float32)
    return X, 0.3 * X[:, :, 0].sum(axis=1)


def search(max_iter=3):
    base = LSTMRegressor(hidden_layer_sizes=8, max_iter=max_iter, random_state=0)
    return GridSearchCV(base, GRID, cv=2)


def assert_same_results(a, b):
    assert set(a) == set(b)
    for key in sorted(set(a) - set(TIMINGS)):
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.dtype == object:
            assert list(x) == list(y), key
        else:
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), key


def test_a_search_through_the_dask_backend_is_bitwise_the_sequential_search(client):
    X, y = data()
    sequential = search().fit(X, y)
    with joblib.parallel_backend("dask"):
        on_dask = search().fit(X, y)
    assert_same_results(sequential.cv_results_, on_dask.cv_results_)
    assert on_dask.best_params_ == sequential.best_params_
    # Both workers took part.
    assert len(client.scheduler_info()["workers"]) == 2


def test_map_blocks_predicts_as_a_local_predict(client):
    X, y = data()
    model = LSTMRegressor(hidden_layer_sizes=8, max_iter=3, random_state=0).fit(X, y)
    big, _ = data(n=1000, seed=1)
    chunks = da.from_array(big, chunks=(128, big.shape[1], big.shape[2]))  # along samples only
    assert chunks.numblocks == (8, 1, 1)
    lazy = chunks.map_blocks(model.predict, drop_axis=(1, 2), dtype=np.float64)
    predicted = lazy.compute()
    local = model.predict(big)
    assert predicted.shape == local.shape == (1000,)
    assert predicted.tobytes() == local.tobytes()


def engine_threads_after_a_fit():
    """Run in a worker: the engine's default threads, and the threads a fit started."""
    import os
    import warnings

    import lstmlearn
    from lstmlearn import _engine

    X, y = data(n=256, T=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LSTMRegressor(hidden_layer_sizes=32, max_iter=2, random_state=0).fit(X, y)
    c = lstmlearn.config()
    return {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "threads": c["threads"],
        "rule": c["threads_rule"],
        # Compute threads the pool started besides the caller's: none at 1 thread.
        "pool_threads": _engine.core.pool_size(),
    }


def test_each_worker_engine_uses_the_threads_its_environment_allows(client):
    seen = client.run(engine_threads_after_a_fit)
    assert len(seen) == 2
    for worker, facts in seen.items():
        assert facts == {
            "OMP_NUM_THREADS": "1",
            "threads": 1,
            "rule": "OMP_NUM_THREADS",
            "pool_threads": 0,
        }, worker


def test_a_worker_killed_mid_search_never_leaves_partial_results(client):
    X, y = data(n=256, T=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sequential = search(max_iter=100).fit(X, y)
    pids = client.run(os.getpid)
    on_dask = search(max_iter=100)
    outcome = {}

    def run():
        try:
            with joblib.parallel_backend("dask"):
                on_dask.fit(X, y)
        except BaseException as error:  # the test inspects it
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (busy := sorted(w for w, keys in client.processing().items() if keys)):
        assert thread.is_alive(), "the search ended before any task ran on a worker"
        assert time.monotonic() < deadline, "no task reached a worker"
        time.sleep(0.005)
    # In the middle of a fit (Windows has no SIGKILL; SIGTERM terminates there).
    os.kill(pids[busy[0]], getattr(signal, "SIGKILL", signal.SIGTERM))
    thread.join(timeout=120)
    assert not thread.is_alive(), "the search hangs after a worker died"

    error = outcome.get("error")
    print(f"search after the kill: {'finished' if error is None else repr(str(error))}")
    if error is None:
        # Dask ran the lost tasks again elsewhere: the whole search, unchanged.
        assert_same_results(sequential.cv_results_, on_dask.cv_results_)
    else:
        # joblib's Dask backend scatters large arguments (the data, the folds'
        # indices) to one worker; when that worker dies they are gone and the
        # search fails, saying which task was lost and why.
        assert isinstance(error, (FutureCancelledError, KilledWorker)), error
        assert "cancelled" in str(error) or "died" in str(error)
        assert not hasattr(on_dask, "cv_results_")
        assert not hasattr(on_dask, "best_estimator_")
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the worker


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_search.py"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/ is not beside tests/ (a copied suite)")
def test_the_dask_search_example_runs():
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "best parameters: {'hidden_layer_sizes'" in out.stdout
    assert "same best parameters: True" in out.stdout
    assert out.stdout.count("engine threads 1 (OMP_NUM_THREADS)") == 2
