"""benchmarks/bench_accuracy.py: its table and its option parsing.

Nothing here loads a data set (aeon is not needed); the repeated CV fits
models of two units for one epoch.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ACCURACY_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_accuracy.py"


@pytest.fixture(scope="module")
def bench():
    """The benchmark script, imported as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("bench_accuracy", ACCURACY_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_accuracy"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_accuracy", None)


def entry(mean, std=0.01, seconds=3.0):
    return {"mean": mean, "std": std, "median_seconds": seconds}


def test_table_sets_lstm_fcn_beside_its_published_accuracy(bench):
    results = {
        "datasets": {
            "GunPoint": {
                "dtw": {"accuracy": 0.907},
                "defaults": entry(0.95),
                "lstm-fcn": entry(0.99),
            },
            "ArrowHead": {"dtw": {"accuracy": 0.703}, "lstm-fcn": entry(0.85)},
            "BasicMotions": {"lstm-fcn": entry(1.0)},  # nothing published to compare with
        }
    }
    table = bench.summarize(results)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert "LSTM-FCN (published)" in table.splitlines()[0]
    assert "| 0.990 ± 0.010 (3 s) | 1.000 | 1.000 |" in rows["GunPoint"]
    assert "| - | 0.850 ± 0.010 (3 s) | 0.897 | 0.814 |" in rows["ArrowHead"]
    assert rows["BasicMotions"].endswith("| 1.000 ± 0.010 (3 s) | - | - |")
    # (0.99 - 1.0 + 0.85 - 0.89714) / 2, over the two sets with a published figure
    gap = (0.99 - 1.0 + 0.85 - bench.LSTM_FCN_PUBLISHED["ArrowHead"]) / 2
    assert f"mean {gap:+.3f} over 2 sets" in table
    assert "GunPoint -0.010" in table and "ArrowHead -0.047" in table


def test_no_gap_line_without_a_published_figure(bench):
    table = bench.summarize({"datasets": {"BasicMotions": {"lstm-fcn": entry(1.0)}}})
    assert "minus its published" not in table


@pytest.mark.parametrize(
    "text, value",
    [
        ("200", 200),
        ("1e-3", 0.001),
        ("0.5", 0.5),
        ("none", None),
        ("None", None),
        ("auto", "auto"),
        ("true", True),
        ("False", False),
    ],
)
def test_param_cv_values(bench, text, value):
    parsed = bench.parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_repeated_cv_adds_one_round_of_folds_per_seed(bench):
    import numpy as np

    rng = np.random.default_rng(0)
    train = [rng.normal(size=(6, 1)) for _ in range(18)]
    y = np.array([0, 1] * 9)
    params = dict(hidden_layer_sizes=2, max_iter=1)
    one = bench.cv_accuracy(train, y, params, 1)
    two = bench.cv_accuracy(train, y, params, 1, seeds=(0, 1))
    assert len(one["cv"]) == 3 and len(two["cv"]) == 6
    assert two["cv"][:3] == one["cv"] and two["epochs"] == [1] * 6


@pytest.fixture
def toy_data(bench, monkeypatch):
    """A data set of 18 sequences of 8 steps in place of the archive's."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 9)
    train = [rng.normal(size=(8, 1)) + label for label in y]
    test = [rng.normal(size=(8, 1)) + label for label in y[:6]]
    monkeypatch.setattr(bench, "load", lambda name: (train, y, test, y[:6]))


def test_patch_cv_repeats_its_folds_for_each_cv_seed(bench, toy_data, tmp_path):
    import json

    out = tmp_path / "patch.json"
    argv = ["--patch-cv", "0,4", "--cv-seeds", "0,1", "--datasets", "Toy", "--json", str(out)]
    assert bench.main(argv) == 0
    rows = json.loads(out.read_text())
    assert [(r["target_steps"], r["patch_size"]) for r in rows] == [(0, 1), (4, 2)]
    assert all(r["cv_seeds"] == [0, 1] and len(r["cv"]) == 6 for r in rows)


def test_first_seed_sets_the_seeds_of_the_test_split_fits(bench, toy_data, tmp_path):
    import json

    out = tmp_path / "acc.json"
    argv = ["--models", "defaults", "--seeds", "2", "--first-seed", "3", "--datasets", "Toy"]
    assert bench.main([*argv, "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["datasets"]["Toy"]["defaults"]["runs"]
    assert [r["seed"] for r in runs] == [3, 4]
    assert [r["fcn_filters"] for r in runs] == [None, None]  # 8 steps: no branch


def test_lstm_fcn_takes_the_batch_size_it_is_given(bench):
    assert bench.fcn_params(8, True)["batch_size"] == "auto"
    assert bench.fcn_params(8, True, 32)["batch_size"] == 32


def test_patch_cv_measures_the_lstm_alone(bench, toy_data, monkeypatch, tmp_path):
    # fcn_filters='auto' would give long univariate series an FCN branch and no patches
    seen = []

    def cv_accuracy(train, y, params, n_jobs, seeds):
        seen.append(params)
        return {"cv": [0.5], "mean": 0.5, "epochs": [1], "seconds": 0.0}

    monkeypatch.setattr(bench, "cv_accuracy", cv_accuracy)
    argv = ["--patch-cv", "0,4", "--datasets", "Toy", "--json", str(tmp_path / "p.json")]
    assert bench.main(argv) == 0
    assert seen == [dict(patch_size=None, fcn_filters=None), dict(patch_size=2, fcn_filters=None)]
