"""set_inference_precision: bfloat16 and int8 inference, on every instruction-set level.

The accuracy, batch and thread independence, streaming and file checks run
once per level the CPU supports, each in a subprocess with LSTMLEARN_ISA set
(the models are fitted here once and handed over as files); the API,
training and pickling checks run on the default level.
"""

import importlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import lstmlearn
from lstmlearn import (
    LSTMClassifier,
    LSTMForecaster,
    LSTMGenerator,
    LSTMRegressor,
    LSTMSeq2Seq,
    _loader,
    _persist,
)

from conftest import rel_err

BASELINE = importlib.import_module("lstmlearn._core_baseline")
LEVELS = [lvl for lvl in _loader.built_levels() if lvl in _loader.supported_levels(BASELINE)]
REDUCED = ("bfloat16", "int8")
PACKAGE_PARENT = str(Path(lstmlearn.__file__).resolve().parent.parent)
# Largest output error relative to the largest float32 output, and the share
# of a held-out set whose labels must agree with float32's.
TOLERANCE = 1e-2
AGREEMENT = 0.995

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# -- models --------------------------------------------------------------------------


def classes_data(n, seed, T=30, F=8, classes=4):
    """Class c: a pattern along direction v_c, varying in time, in noise."""
    rng = np.random.default_rng(99)
    directions = rng.normal(size=(classes, F)) / np.sqrt(F)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    t = np.linspace(0, 1, T)
    wave = 1.0 + np.sin(2 * np.pi * (1 + y)[:, None] * t[None, :])
    X = rng.normal(size=(n, T, F)) + 2.0 * wave[:, :, None] * directions[y][:, None, :]
    return X.astype(np.float32), y


def bench_like(T, F, H, outputs, seed=0):
    """The benchmarks' way: one partial_fit epoch on standard-normal data."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((64, T, F), dtype=np.float32)
    y = rng.standard_normal((64, outputs)).astype(np.float32)
    model = LSTMRegressor(H, batch_size=64, shuffle=False, random_state=seed, n_jobs=2)
    return model.partial_fit(X, y[:, 0] if outputs == 1 else y)


def trained_regressor():
    """A stacked regressor trained on sequences of several lengths (a mask)."""
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(int(n), 3)).astype(np.float32) for n in rng.integers(10, 40, 200)]
    y = np.array([np.sin(x[:, 0]).sum() * 0.2 + x[-3:, 1].mean() for x in X], dtype=np.float32)
    model = LSTMRegressor((48, 32), max_iter=30, random_state=0, n_jobs=2)
    return model.fit(X, y), X[:64]


def trained_classifier():
    X, y = classes_data(600, 0)
    model = LSTMClassifier(48, max_iter=40, random_state=0, n_jobs=2).fit(X, y)
    return model, classes_data(1000, 1)[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Fitted float32 models saved as files: name -> (path, input) ."""
    folder = tmp_path_factory.mktemp("precision")
    rng = np.random.default_rng(5)
    reg, reg_x = trained_regressor()
    cls, cls_x = trained_classifier()
    per_step = LSTMRegressor(40, max_iter=3, random_state=0, n_jobs=2)
    xs = rng.normal(size=(32, 25, 4)).astype(np.float32)
    per_step.fit(xs, np.cumsum(xs[:, :, :2], axis=1) * 0.1)
    fitted = {
        "large": (bench_like(100, 64, 512, 1), rng.standard_normal((24, 100, 64))),
        "medium": (bench_like(100, 32, 128, 10), rng.standard_normal((64, 100, 32))),
        "trained": (reg, reg_x),
        "per_step": (per_step, rng.normal(size=(8, 25, 4))),
        "classifier": (cls, cls_x),
    }
    out = {}
    for name, (model, x) in fitted.items():
        path = folder / f"{name}.safetensors"
        model.save(path)
        data = folder / f"{name}.pkl"
        data.write_bytes(pickle.dumps(x))
        out[name] = (path, data)
    # A file saved with a reduced precision set.
    saved = lstmlearn.load(out["medium"][0]).set_inference_precision("int8")
    saved.save(folder / "medium-int8.safetensors")
    return folder, out


# What each level's subprocess computes, for every model and precision.
LEVEL_SCRIPT = textwrap.dedent(
    """
    import json, pickle, sys
    from pathlib import Path
    import numpy as np
    import lstmlearn

    folder = Path(sys.argv[1])
    names = json.loads(sys.argv[2])
    results = {"isa": lstmlearn.config()["isa"]}
    arrays = {}
    for name in names:
        x = pickle.loads((folder / f"{name}.pkl").read_bytes())
        model = lstmlearn.load(folder / f"{name}.safetensors")
        predict = getattr(model, "predict_proba", model.predict)
        for precision in ("float32", "bfloat16", "int8"):
            model.set_inference_precision(precision)
            model.n_jobs = 2
            key = f"{name}/{precision}"
            arrays[key] = np.asarray(predict(x), dtype=np.float64)
            model.n_jobs = 1
            arrays[key + "/one_thread"] = np.asarray(predict(x), dtype=np.float64)
            if isinstance(x, np.ndarray):
                arrays[key + "/rows"] = np.concatenate([predict(x[i : i + 1]) for i in range(3)])
            if name == "per_step":
                stream = model.stream(len(x))
                steps = [stream.step(x[:, t]) for t in range(x.shape[1])]
                arrays[key + "/stream"] = np.stack(steps, 1)
        model.set_inference_precision("float32")
        arrays[name + "/back_to_float32"] = np.asarray(predict(x), dtype=np.float64)
    loaded = lstmlearn.load(folder / "medium-int8.safetensors")
    results["loaded_precision"] = loaded.inference_precision_
    x = pickle.loads((folder / "medium.pkl").read_bytes())
    arrays["loaded_int8"] = loaded.predict(x)
    np.savez(folder / f"level-{results['isa']}.npz", **arrays)
    print(json.dumps(results))
    """
)

NAMES = ["large", "medium", "trained", "per_step", "classifier"]


@pytest.fixture(scope="module")
def levels(models):
    """level -> (results, arrays) from a subprocess running that level."""
    folder, _ = models
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    out = {}
    for level in LEVELS:
        env[_loader.ENV_VAR] = level
        run = subprocess.run(
            [sys.executable, "-c", LEVEL_SCRIPT, str(folder), json.dumps(NAMES)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        results = json.loads(run.stdout.strip().splitlines()[-1])
        assert results["isa"] == level
        out[level] = (results, dict(np.load(folder / f"level-{level}.npz")))
    return out


def test_levels_here():
    assert "baseline" in LEVELS
    if BASELINE.cpu_has_avx2():
        assert "avx2" in LEVELS


# -- on every level ---------------------------------------------------------------------


@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", ["large", "medium", "trained", "per_step"])
def test_regressors_stay_close_to_float32(levels, level, precision, name):
    _, arrays = levels[level]
    reference, reduced = arrays[f"{name}/float32"], arrays[f"{name}/{precision}"]
    assert rel_err(reduced, reference) <= TOLERANCE
    assert not np.array_equal(reduced, reference)  # the reduced path did run


@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize("level", LEVELS)
def test_classifier_labels_agree(levels, level, precision):
    _, arrays = levels[level]
    reference = arrays["classifier/float32"].argmax(axis=1)
    labels = arrays[f"classifier/{precision}"].argmax(axis=1)
    assert len(labels) == 1000
    assert np.mean(labels == reference) >= AGREEMENT
    assert rel_err(arrays[f"classifier/{precision}"], arrays["classifier/float32"]) <= TOLERANCE


@pytest.mark.parametrize("precision", ("float32", *REDUCED))
@pytest.mark.parametrize("level", LEVELS)
def test_results_do_not_depend_on_rows_or_threads(levels, level, precision):
    _, arrays = levels[level]
    for name in NAMES:
        key = f"{name}/{precision}"
        np.testing.assert_array_equal(arrays[key + "/one_thread"], arrays[key])
        if key + "/rows" in arrays:
            np.testing.assert_array_equal(arrays[key + "/rows"], arrays[key][:3])


@pytest.mark.parametrize("precision", ("float32", *REDUCED))
@pytest.mark.parametrize("level", LEVELS)
def test_stream_gives_predicts_bits(levels, level, precision):
    _, arrays = levels[level]
    np.testing.assert_array_equal(
        arrays[f"per_step/{precision}/stream"], arrays[f"per_step/{precision}"]
    )


@pytest.mark.parametrize("level", LEVELS)
def test_float32_path_is_unchanged(levels, level):
    _, arrays = levels[level]
    for name in NAMES:
        np.testing.assert_array_equal(arrays[f"{name}/back_to_float32"], arrays[f"{name}/float32"])


@pytest.mark.parametrize("level", LEVELS)
def test_a_saved_precision_loads_and_predicts_the_same(levels, level):
    results, arrays = levels[level]
    assert results["loaded_precision"] == "int8"
    np.testing.assert_array_equal(arrays["loaded_int8"], arrays["medium/int8"])


def test_levels_agree_with_each_other(levels):
    """int8 sums are exact on every level; bfloat16 chains differ by rounding only."""
    first, *others = LEVELS
    for level in others:
        for name in NAMES:
            for precision in ("float32", *REDUCED):
                a = levels[first][1][f"{name}/{precision}"]
                b = levels[level][1][f"{name}/{precision}"]
                assert rel_err(b, a) <= 1e-3, (level, name, precision)


def test_float32_predictions_equal_those_of_a_model_never_set(models):
    _, files = models
    path, data = files["medium"]
    x = pickle.loads(data.read_bytes())
    plain = lstmlearn.load(path)
    expected = plain.predict(x)
    model = lstmlearn.load(path)
    model.set_inference_precision("int8").predict(x)
    np.testing.assert_array_equal(model.set_inference_precision("float32").predict(x), expected)


# -- API -------------------------------------------------------------------------------


X, Y = classes_data(64, 3, T=12, F=3, classes=3)
YR = X[:, :, 0].mean(axis=1)


def small(cls=LSTMRegressor, **params):
    params = {"hidden_layer_sizes": 16, "max_iter": 3, "random_state": 0, "n_jobs": 1, **params}
    return cls(**params)


def test_returns_self_and_records_the_precision():
    model = small().fit(X, YR)
    assert model.inference_precision_ == "float32"
    assert model.set_inference_precision("int8") is model
    assert model.inference_precision_ == "int8"
    assert model.set_inference_precision("bfloat16").inference_precision_ == "bfloat16"
    # Not a constructor parameter: clone and get_params are unaffected.
    assert "inference_precision" not in model.get_params()


@pytest.mark.parametrize("bad", ["fp16", "INT8", "float64", "", None, 8, np.float32, ["int8"]])
def test_bad_precisions_say_what_was_expected_and_what_came(bad):
    model = small().fit(X, YR)
    with pytest.raises(ValueError, match=r"'float32', 'bfloat16', 'int8'; got") as error:
        model.set_inference_precision(bad)
    assert repr(bad) in str(error.value)
    assert model.inference_precision_ == "float32"


def test_unfitted_models_refuse():
    with pytest.raises(NotFittedError):
        small().set_inference_precision("int8")
    with pytest.raises(NotFittedError):
        small().inference_precision_  # noqa: B018


def test_float64_models_refuse_reduced_precisions():
    model = small(dtype=np.float64).fit(X, YR)
    for precision in REDUCED:
        with pytest.raises(ValueError, match="needs a float32 model; this one has dtype float64"):
            model.set_inference_precision(precision)
    assert model.set_inference_precision("float32").inference_precision_ == "float32"


def test_the_engine_refuses_what_python_would():
    model64 = small(dtype=np.float64).fit(X, YR)
    out = np.empty((len(X), 1))
    with pytest.raises(ValueError, match="'int8' needs float32 parameters"):
        model64._network().predict(model64._params, X, None, out, 32, 1, precision="int8")
    model = small().fit(X, YR)
    out = np.empty((len(X), 1), dtype=np.float32)
    with pytest.raises(ValueError, match="'float32', 'bfloat16' or 'int8'; got 'half'"):
        model._network().predict(model._params, X, None, out, 32, 1, precision="half")


def test_seq2seq_refuses():
    model = LSTMSeq2Seq(8, max_iter=1, random_state=0).fit(X, X[:, :4])
    with pytest.raises(NotImplementedError, match="LSTMSeq2Seq cannot predict in reduced"):
        model.set_inference_precision("int8")


@pytest.mark.parametrize(
    "params, data",
    [
        ({"bidirectional": True, "hidden_layer_sizes": (16, 8)}, X),
        ({"pooling": "attention"}, X),
        ({"pooling": "mean", "merge_mode": "sum", "bidirectional": True}, X),
        ({"fcn_filters": (4, 4, 4)}, X),
        ({"dimension_shuffle": True}, X),
        ({"conv_filters": 3, "conv_kernel_size": 2}, np.repeat(X[:, :, None, :], 4, axis=2)),
        ({"return_sequences": True}, X),
    ],
)
def test_every_architecture_predicts_in_reduced_precision(params, data):
    """Only the LSTM layers' W_hh is reduced: front ends, branches, pooling stay float32."""
    targets = np.repeat(YR[:, None], X.shape[1], 1) if params.get("return_sequences") else YR
    model = small(**params).fit(data, targets)
    reference = model.predict(data)
    for precision in REDUCED:
        out = model.set_inference_precision(precision).predict(data)
        assert rel_err(out, reference) <= TOLERANCE


def test_classifier_and_generator():
    cls = small(LSTMClassifier, max_iter=20).fit(X, Y)
    labels = cls.predict(X)
    assert np.mean(cls.set_inference_precision("int8").predict(X) == labels) >= 0.95
    gen = LSTMGenerator(24, seq_length=8, max_iter=3, random_state=0).fit("abcabdabe" * 8)
    expected = gen.predict_proba("abca")
    gen.set_inference_precision("bfloat16")
    assert rel_err(gen.predict_proba("abca"), expected) <= TOLERANCE
    stream = gen.stream()
    for ch in "abca":
        p = stream.step(ch)
    np.testing.assert_array_equal(p, gen.predict_proba("abca")[0])
    assert len(gen.generate("ab", length=10, random_state=0)) == 10


def test_forecaster_delegates_and_keeps_it_across_fits():
    t = np.arange(80)
    y = np.sin(2 * np.pi * t / 12) + 0.02 * t
    f = LSTMForecaster(
        window=12, horizon=3, hidden_layer_sizes=8, max_iter=3, random_state=0, dtype=np.float32
    )
    f.fit(y)
    expected = f.predict()
    assert f.set_inference_precision("int8") is f
    assert f.inference_precision_ == "int8" == f.estimator_.inference_precision_
    assert rel_err(f.predict(), expected) <= TOLERANCE
    f.fit(y)  # a new network, in the same precision
    assert f.estimator_.inference_precision_ == "int8"
    lower, upper = f.predict_interval(horizon=2)
    assert lower.shape == upper.shape == (2,)
    f.update(y[:5] * 0 + y[-1], refit=True)
    assert f.estimator_.inference_precision_ == "int8"
    with pytest.raises(ValueError, match="got 'int4'"):
        f.set_inference_precision("int4")


# -- training stays float32 and the copies follow the weights ---------------------------


@pytest.mark.parametrize("precision", REDUCED)
def test_training_is_float32_whatever_the_inference_precision(precision):
    plain = small(max_iter=4, early_stopping=True).fit(X, YR)
    model = small(max_iter=2, early_stopping=True).fit(X, YR)
    model.set_inference_precision(precision)
    model.set_params(max_iter=4).fit(X, YR)  # a fresh fit: the same as plain's
    np.testing.assert_array_equal(model._params, plain._params)
    assert model.validation_scores_ == plain.validation_scores_
    assert model.inference_precision_ == precision  # kept by the fit
    for _ in range(2):
        plain.partial_fit(X, YR)
        model.partial_fit(X, YR)
    np.testing.assert_array_equal(model._params, plain._params)


@pytest.mark.parametrize("precision", REDUCED)
def test_the_reduced_copy_follows_the_weights(precision):
    model = small(max_iter=2).fit(X, YR).set_inference_precision(precision)
    before = model.predict(X)
    model.partial_fit(X, YR)  # new weights: the next predict makes a new copy
    after = model.predict(X)
    fresh = pickle.loads(pickle.dumps(model))  # a new engine, copies made from scratch
    np.testing.assert_array_equal(fresh.predict(X), after)
    assert not np.array_equal(after, before)
    # Weights written from elsewhere too.
    model._params[: model._params.size // 2] *= 0.5
    lstmlearn._training.params_written(model)
    np.testing.assert_array_equal(model.predict(X), pickle.loads(pickle.dumps(model)).predict(X))


def test_a_stream_takes_the_precision_of_its_model():
    model = small(return_sequences=True).fit(X, np.repeat(YR[:, None], 12, 1))
    model.set_inference_precision("int8")
    stream = model.stream(4)
    out = np.stack([stream.step(X[:4, t]) for t in range(12)], 1)
    np.testing.assert_array_equal(out, model.predict(X[:4]))
    model.set_inference_precision("float32")
    stream = model.stream(4)
    out = np.stack([stream.step(X[:4, t]) for t in range(12)], 1)
    np.testing.assert_array_equal(out, model.predict(X[:4]))


# -- persistence --------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ("float32", *REDUCED))
def test_save_load_and_pickle_keep_the_precision(tmp_path, precision):
    model = small(LSTMClassifier, max_iter=5).fit(X, Y).set_inference_precision(precision)
    expected = model.predict_proba(X)
    model.save(tmp_path / "m.safetensors")
    for copy in (lstmlearn.load(tmp_path / "m.safetensors"), pickle.loads(pickle.dumps(model))):
        assert copy.inference_precision_ == precision
        np.testing.assert_array_equal(copy.predict_proba(X), expected)


def fitted_state(model):
    """The fitted attributes of `model`, as a file holds them."""
    names = model._get_param_names()
    return {k: v for k, v in model.__getstate__().items() if k not in names}


def test_older_states_predict_in_float32():
    model = small().fit(X, YR).set_inference_precision("int8")
    state = model.__getstate__()
    del state["_inference_precision"]
    old = LSTMRegressor.__new__(LSTMRegressor)
    old.__setstate__(state)
    assert old.inference_precision_ == "float32"
    np.testing.assert_array_equal(old.predict(X), small().fit(X, YR).predict(X))
    fitted = fitted_state(model)
    del fitted["_inference_precision"]
    _persist.check_state(LSTMRegressor, fitted)  # a file without it still loads


def test_files_with_a_bad_precision_are_refused():
    model = small().fit(X, YR)
    state = fitted_state(model)
    state["_inference_precision"] = "int4"
    with pytest.raises(ValueError, match="_inference_precision"):
        _persist.check_state(LSTMRegressor, state)
    model64 = small(dtype=np.float64).fit(X, YR)
    state = model64.__getstate__()
    state["_inference_precision"] = "int8"
    restored = LSTMRegressor.__new__(LSTMRegressor)
    restored.__setstate__(state)
    with pytest.raises(ValueError, match="needs a float32 model"):
        restored._check_restored()
