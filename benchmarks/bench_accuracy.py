"""Accuracy on public time-series classification data: lstmlearn against 1-NN DTW.

Datasets of the UCR/UEA archive that aeon ships inside its package (no
download), official train/test splits. For each dataset:

- ``dtw``: 1-nearest-neighbour with full-window DTW (aeon's
  ``KNeighborsTimeSeriesClassifier(distance="dtw")``), computed here;
- ``defaults``: ``LSTMClassifier(random_state=seed)``, nothing else set (its
  ``fcn_filters='auto'`` gives univariate series of 101 to 1,000 steps an
  FCN branch);
- ``lstm-fcn``: ``LSTMClassifier`` with the LSTM-FCN branch of Karim et al.
  (filters 128, 256, 128, kernels 8, 5, 3; squeeze-and-excitation for
  multivariate data; the LSTM on the dimension-shuffled input where the
  lengths agree), the LSTM's
  width chosen among ``--fcn-hidden`` by 3-fold cross-validation on the
  training split only (seed 0).

Every model sees the same input: each channel standardised with the mean and
standard deviation of the training split. Each lstmlearn model is fitted with
``--seeds`` seeds; the table gives the mean and standard deviation of the test
accuracy and the median fit time. Published ROCKET accuracies (Dempster et
al. 2020, the mean over 10 resamples in the authors' repository's
``results/results_ucr.csv``; univariate sets only) stand beside them for
scale, and the published LSTM-FCN accuracies (Karim et al. 2018, the
authors' repository's ``Results/train_loss_old_datasets.csv``) where the
archive of 2015 has the set. Run ``python benchmarks/bench_accuracy.py --help`` for the options;
aeon is in the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "accuracy.json"

# name: what it stands for in the table
DATASETS = {
    "ItalyPowerDemand": "univariate, 24 steps",
    "GunPoint": "univariate, 150 steps",
    "ArrowHead": "univariate, 251 steps",
    "OSULeaf": "univariate, 427 steps",
    "ACSF1": "univariate, 1,460 steps",
    "PickupGestureWiimoteZ": "univariate, variable length",
    "BasicMotions": "6 channels, 100 steps",
    "JapaneseVowels": "12 channels, variable length",
}

# Dempster, Petitjean and Webb (2020), "ROCKET: exceptionally fast and accurate
# time series classification using random convolutional kernels", Data Mining
# and Knowledge Discovery 34: accuracy_mean of results/results_ucr.csv in the
# authors' repository (angus924/rocket).
ROCKET = {
    "ACSF1": 0.886,
    "ArrowHead": 0.8143,
    "GunPoint": 1.0,
    "ItalyPowerDemand": 0.9696,
    "OSULeaf": 0.9409,
    "PickupGestureWiimoteZ": 0.83,
}

# Karim, Majumdar, Darabi and Chen (2018), "LSTM fully convolutional networks
# for time series classification", IEEE Access 6, 1662-1669: the LSTM-FCN
# column of Results/train_loss_old_datasets.csv in the authors' repository
# (titu1994/LSTM-FCN, commit 65cebcb), the results of the models chosen by
# their minimum training loss. The file covers the sets of the 2015 archive
# only: ACSF1 and PickupGestureWiimoteZ came in 2018, and the multivariate
# sets are elsewhere.
LSTM_FCN_PUBLISHED = {
    "ArrowHead": 0.89714,
    "GunPoint": 1.0,
    "ItalyPowerDemand": 0.9621,
    "OSULeaf": 0.98347,
}


def load(name: str):
    """Train and test splits as lists of [T_i, C] float32 arrays, standardised."""
    from aeon.datasets import load_classification

    out = []
    for split in ("train", "test"):
        X, y = load_classification(name, split=split)
        out.append(([np.asarray(x, dtype=np.float32).T for x in X], np.asarray(y)))
    (train, y_train), (test, y_test) = out
    steps = np.concatenate(train)  # every training step, [sum T_i, C]
    mean, std = steps.mean(axis=0), steps.std(axis=0)
    std[std == 0] = 1
    train = [(s - mean) / std for s in train]
    test = [(s - mean) / std for s in test]
    return train, y_train, test, y_test


def aeon_layout(seqs: list[np.ndarray]):
    """[n, C, T] when the lengths agree, else the list of [C, T_i] aeon takes."""
    if len({len(s) for s in seqs}) == 1:
        return np.stack([s.T for s in seqs])
    return [np.ascontiguousarray(s.T) for s in seqs]


def lstm_input(seqs: list[np.ndarray]):
    return np.stack(seqs) if len({len(s) for s in seqs}) == 1 else seqs


def run_dtw(train, y_train, test, y_test) -> dict:
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier

    start = time.perf_counter()
    knn = KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw")
    knn.fit(aeon_layout(train), y_train)
    accuracy = float(np.mean(knn.predict(aeon_layout(test)) == y_test))
    return {"accuracy": accuracy, "seconds": time.perf_counter() - start}


def fcn_params(hidden: int, equal_lengths: bool, batch_size: int | str = "auto") -> dict:
    # The papers' dimension shuffle needs one length; variable-length sets
    # (JapaneseVowels, PickupGestureWiimoteZ) run the LSTM on the steps.
    return dict(
        hidden_layer_sizes=hidden,
        batch_size=batch_size,
        fcn_filters=(128, 256, 128),
        fcn_kernel_sizes=(8, 5, 3),
        dimension_shuffle=equal_lengths,
    )


def papers_budget(epochs: int) -> dict:
    """The LSTM-FCN repository's training of `epochs` epochs, in LSTMClassifier's terms.

    Its training function: Adam at 1e-3, batch 128, ReduceLROnPlateau on the
    training loss (factor 2^(-1/3), patience 100, down to 1e-4), every epoch
    run, and the weights of the least training loss kept (ModelCheckpoint).
    """
    return dict(
        max_iter=epochs,
        batch_size=128,
        lr_schedule="plateau",
        lr_factor=2 ** (-1 / 3),
        lr_patience=100,
        min_learning_rate=1e-4,
        n_iter_no_change=epochs,  # never stops early
        restore_best_weights=True,
    )


def choose_fcn_hidden(train, y_train, choices, n_jobs, batch_size="auto") -> tuple[int, dict]:
    """The LSTM width of the best 3-fold CV accuracy on the training split."""
    if len(choices) == 1:  # nothing to choose: no cross-validation
        return choices[0], {}
    equal = len({len(s) for s in train}) == 1
    scores = {
        hidden: cv_accuracy(train, y_train, fcn_params(hidden, equal, batch_size), n_jobs)["mean"]
        for hidden in choices
    }
    return max(choices, key=lambda h: (scores[h], -h)), scores


def run_lstm(train, y_train, test, y_test, params: dict, seeds, n_jobs) -> dict:
    from lstmlearn import LSTMClassifier

    runs = []
    for seed in seeds:
        model = LSTMClassifier(**params, random_state=seed, n_jobs=n_jobs)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(lstm_input(train), y_train)
        seconds = time.perf_counter() - start
        accuracy = float(np.mean(model.predict(lstm_input(test)) == y_test))
        runs.append(
            {
                "seed": seed,
                "accuracy": accuracy,
                "seconds": seconds,
                "epochs": model.n_iter_,
                "patch_size": int(getattr(model, "patch_size_", 1)),
                "fcn_filters": model.fcn_filters_ and list(model.fcn_filters_),  # what 'auto' built
            }
        )
    accs = [r["accuracy"] for r in runs]
    return {
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "runs": runs,
        "mean": statistics.fmean(accs),
        "std": statistics.pstdev(accs),
        "median_seconds": statistics.median(r["seconds"] for r in runs),
    }


def cv_accuracy(train, y_train, params: dict, n_jobs, seeds=(0,)) -> dict:
    """3-fold stratified CV on the training split of LSTMClassifier(**params).

    Each seed draws its own folds and seeds the models: several seeds repeat
    the CV, for differences smaller than one CV's spread.
    """
    from sklearn.model_selection import StratifiedKFold

    from lstmlearn import LSTMClassifier

    accs, epochs = [], []
    start = time.perf_counter()
    for seed in seeds:
        folds = StratifiedKFold(3, shuffle=True, random_state=seed)
        for fit_rows, val_rows in folds.split(np.zeros(len(y_train)), y_train):
            model = LSTMClassifier(**params, random_state=seed, n_jobs=n_jobs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(lstm_input([train[i] for i in fit_rows]), y_train[fit_rows])
            pred = model.predict(lstm_input([train[i] for i in val_rows]))
            accs.append(float(np.mean(pred == y_train[val_rows])))
            epochs.append(model.n_iter_)
    return {
        "cv": accs,
        "mean": statistics.fmean(accs),
        "epochs": epochs,
        "seconds": time.perf_counter() - start,
    }


def patch_cv(name: str, targets: list[int], n_jobs, seeds=(0,)) -> list[dict]:
    """3-fold CV accuracy on the training split of LSTMClassifier(patch_size=k).

    For each target length, k = ceil(T / target) (0: no patches), so that the
    LSTM sees about `target` steps: the measurement behind patch_size='auto'.
    """
    train, y_train, _, _ = load(name)
    T = max(len(s) for s in train)
    rows = []
    for target in targets:
        k = -(-T // target) if target else None
        row = {"dataset": name, "T": T, "target_steps": target, "patch_size": k or 1}
        row["cv_seeds"] = list(seeds)
        # the LSTM alone: fcn_filters='auto' would give univariate series an FCN branch
        params = {"patch_size": k, "fcn_filters": None}
        row.update(cv_accuracy(train, y_train, params, n_jobs, seeds))
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def param_cv(name: str, param: str, values: list, n_jobs, seeds=(0,)) -> list[dict]:
    """3-fold CV accuracy on the training split of LSTMClassifier(param=value), the
    rest at its defaults: how a default was chosen."""
    train, y_train, _, _ = load(name)
    rows = []
    for value in values:
        row = {"dataset": name, "param": param, "value": value, "cv_seeds": list(seeds)}
        row.update(cv_accuracy(train, y_train, {param: value}, n_jobs, seeds))
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def parse_value(text: str):
    """'200' -> 200, '1e-3' -> 0.001, 'none' -> None, 'true' -> True, anything else a str."""
    words = {"none": None, "true": True, "false": False}
    if text.lower() in words:
        return words[text.lower()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def published(table: dict[str, float], name: str) -> str:
    return f"{table[name]:.3f}" if name in table else "-"


def summarize(results: dict) -> str:
    lines = [
        "| dataset | kind | 1-NN DTW | defaults | LSTM-FCN | LSTM-FCN (published) "
        "| ROCKET (published) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]

    def cell(entry):
        if not entry:
            return "-"
        return f"{entry['mean']:.3f} ± {entry['std']:.3f} ({entry['median_seconds']:.0f} s)"

    gaps = {}
    for name, r in results["datasets"].items():
        dtw = r.get("dtw")
        fcn = r.get("lstm-fcn")
        if fcn and name in LSTM_FCN_PUBLISHED:
            gaps[name] = fcn["mean"] - LSTM_FCN_PUBLISHED[name]
        lines.append(
            f"| {name} | {DATASETS.get(name, '')} | "
            + (f"{dtw['accuracy']:.3f}" if dtw else "-")
            + f" | {cell(r.get('defaults'))} | {cell(fcn)} | "
            + f"{published(LSTM_FCN_PUBLISHED, name)} | {published(ROCKET, name)} |"
        )
    if gaps:
        listed = ", ".join(f"{name} {gap:+.3f}" for name, gap in gaps.items())
        lines.append(
            f"\nLSTM-FCN minus its published accuracy: mean {statistics.fmean(gaps.values()):+.3f}"
            f" over {len(gaps)} sets ({listed})."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated names")
    parser.add_argument("--models", default="dtw,defaults,lstm-fcn")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per lstmlearn model")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ..."
    )
    parser.add_argument(
        "--fcn-hidden", default="8,64", help="LSTM widths tried by the CV (one: no CV)"
    )
    parser.add_argument(
        "--fcn-epochs",
        type=int,
        default=0,
        help="train LSTM-FCN this many epochs as the LSTM-FCN repository does (0: the "
        "defaults' training loop); the width CV keeps the defaults' loop",
    )
    parser.add_argument(
        "--fcn-batch-size",
        default="auto",
        help="LSTM-FCN's batch_size with the defaults' loop (the rows measured before "
        "batch_size='auto' used 32)",
    )
    parser.add_argument(
        "--fcn-head-dropout",
        type=float,
        default=0.0,
        help="LSTM-FCN's head_dropout (the papers' Dropout after the LSTM is 0.8; the table's "
        "rows use 0)",
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="threads of each fit")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--summarize", type=Path, help="print the table of a results file")
    parser.add_argument(
        "--patch-cv",
        metavar="TARGETS",
        help="instead: CV on the training split of patches giving about these many steps "
        "(comma-separated, 0 = no patches), written to --json",
    )
    parser.add_argument(
        "--param-cv",
        metavar="NAME=V1,V2",
        help="instead: CV on the training split of LSTMClassifier(NAME=value) for each value, "
        "the rest at its defaults, written to --json",
    )
    parser.add_argument(
        "--cv-seeds",
        default="0",
        help="seeds of --param-cv's and --patch-cv's repeated CV (comma-separated; each "
        "draws its folds)",
    )
    args = parser.parse_args(argv)
    if args.patch_cv or args.param_cv:
        names = args.datasets.split(",")
        seeds = [int(v) for v in args.cv_seeds.split(",")]
        if args.patch_cv:
            targets = [int(t) for t in args.patch_cv.split(",")]
            rows = [r for n in names for r in patch_cv(n, targets, args.n_jobs, seeds)]
        else:
            param, _, values = args.param_cv.partition("=")
            parsed = [parse_value(v) for v in values.split(",")]
            rows = [r for n in names for r in param_cv(n, param, parsed, args.n_jobs, seeds)]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
        return 0
    if args.summarize:
        print(summarize(json.loads(args.summarize.read_text())))
        return 0

    import lstmlearn

    models = args.models.split(",")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    results = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"lstmlearn": lstmlearn.config(), "python": platform.python_version()},
        "args": {k: str(v) for k, v in vars(args).items()},
        "datasets": {},
    }
    if args.json.exists():  # resume: keep what an earlier run measured
        results["datasets"] = json.loads(args.json.read_text()).get("datasets", {})
    for name in args.datasets.split(","):
        train, y_train, test, y_test = load(name)
        entry = results["datasets"].setdefault(name, {})
        print(f"{name}: {len(train)} train, {len(test)} test", flush=True)
        if "dtw" in models:
            entry["dtw"] = run_dtw(train, y_train, test, y_test)
            print(f"  1-NN DTW {entry['dtw']['accuracy']:.3f}", flush=True)
        if "defaults" in models:
            entry["defaults"] = run_lstm(train, y_train, test, y_test, {}, seeds, args.n_jobs)
            print(f"  defaults {entry['defaults']['mean']:.3f}", flush=True)
        if "lstm-fcn" in models:
            choices = [int(h) for h in args.fcn_hidden.split(",")]
            batch = parse_value(args.fcn_batch_size)
            hidden, cv = choose_fcn_hidden(train, y_train, choices, args.n_jobs, batch)
            params = fcn_params(hidden, len({len(s) for s in train}) == 1, batch)
            if args.fcn_epochs:
                params.update(papers_budget(args.fcn_epochs))
            if args.fcn_head_dropout:
                params["head_dropout"] = args.fcn_head_dropout
            entry["lstm-fcn"] = run_lstm(train, y_train, test, y_test, params, seeds, args.n_jobs)
            entry["lstm-fcn"]["cv"] = {str(h): s for h, s in cv.items()}
            print(f"  LSTM-FCN (hidden {hidden}) {entry['lstm-fcn']['mean']:.3f}", flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    print(summarize(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
