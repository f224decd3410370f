"""Grid-search an LSTMRegressor on a Dask cluster, then score a large array with it.

Starts a LocalCluster of two single-threaded worker processes (on a real
cluster, pass the scheduler's address to Client instead), runs the search
through joblib's Dask backend, checks that it found what the same search
finds in this process, and predicts a larger array chunk by chunk on the
workers with dask.array. Prints the best parameters, the times, and the
threads each worker's engine runs on (Dask's nanny sets OMP_NUM_THREADS=1 in
every worker, and lstmlearn follows it).

Needs dask[array] and distributed (pip install "dask[array]" distributed).
Run: python examples/dask_search.py
"""

import time
import warnings

import dask.array as da
import joblib
import numpy as np
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import lstmlearn
from lstmlearn import LSTMRegressor
from lstmlearn.datasets import make_noisy_sine


def engine_threads() -> str:
    """Run on each worker: how many threads its engine uses, and why."""
    c = lstmlearn.config()
    return f"{c['threads']} ({c['threads_rule']})"


def main() -> None:
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = make_noisy_sine(n_samples=600, timesteps=16, noise=0.1, random_state=0)
    search = GridSearchCV(
        LSTMRegressor(max_iter=20, random_state=0),
        {"hidden_layer_sizes": [8, 16], "learning_rate": [0.003, 0.01]},
        cv=2,
    )

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        print(
            f"lstmlearn {lstmlearn.__version__}; Dask cluster with {len(cluster.workers)} workers"
        )
        for worker, threads in sorted(client.run(engine_threads).items()):
            print(f"  {worker}: engine threads {threads}")

        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            search.fit(X, y)
        on_dask = time.perf_counter() - start
        print(f"best parameters: {search.best_params_}  (R² {search.best_score_:.3f})")
        print(
            f"search of {len(search.cv_results_['params'])} candidates x 2 folds on Dask: "
            f"{on_dask:.1f} s"
        )

        # Batch scoring: chunks along samples only, each predicted on a worker.
        big, _ = make_noisy_sine(n_samples=20_000, timesteps=16, noise=0.1, random_state=1)
        chunks = da.from_array(big, chunks=(2_500, big.shape[1], big.shape[2]))
        start = time.perf_counter()
        predicted = chunks.map_blocks(
            search.best_estimator_.predict, drop_axis=(1, 2), dtype=np.float64
        ).compute()
        scoring = time.perf_counter() - start
        print(
            f"predicted {len(predicted)} samples in {chunks.numblocks[0]} chunks: {scoring:.1f} s"
        )

    start = time.perf_counter()
    local = GridSearchCV(search.estimator, search.param_grid, cv=2).fit(X, y)
    print(
        f"the same search in this process: {time.perf_counter() - start:.1f} s, "
        f"same best parameters: {local.best_params_ == search.best_params_}"
    )


if __name__ == "__main__":
    main()
