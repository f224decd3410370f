"""model.save / lstmlearn.load: round trips, atomic writes, and hostile files."""

import json
import os
import pickle
import warnings

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import lstmlearn
from lstmlearn import LSTMClassifier, LSTMGenerator, LSTMRegressor, LSTMSeq2Seq, _persist


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 5, 2))
Y = X[:, :, 0].sum(axis=1)
FRAMES = RNG.normal(size=(24, 3, 4, 2))
TOKENS = RNG.integers(0, 5, size=(24, 3))
COMMON = dict(hidden_layer_sizes=6, max_iter=2, random_state=0, n_jobs=1)


def models():
    """One fitted model of every kind and option the file must carry."""
    return {
        "regressor": (LSTMRegressor(**COMMON).fit(X, Y), X),
        "regressor_early_stopping_float64": (
            LSTMRegressor(early_stopping=True, dtype=np.float64, **COMMON).fit(X, Y),
            X,
        ),
        "regressor_per_step_bidirectional": (
            LSTMRegressor(bidirectional=True, merge_mode="ave", **COMMON).fit(X, X),
            X,
        ),
        "classifier_strings_attention": (
            LSTMClassifier(pooling="attention", head_dropout=0.3, **COMMON).fit(
                X, np.where(Y > 0, "up", "down")
            ),
            X,
        ),
        "classifier_conv1d": (
            LSTMClassifier(conv_filters=2, conv_kernel_size=2, **COMMON).fit(FRAMES, Y > 0),
            FRAMES,
        ),
        "classifier_ragged": (
            LSTMClassifier(**COMMON).fit([x[: 2 + k % 3] for k, x in enumerate(X)], Y > 0),
            [x[: 2 + k % 3] for k, x in enumerate(X[:6])],
        ),
        "generator_text": (LSTMGenerator(6, seq_length=4, max_iter=2).fit("abcabd" * 4), "abc"),
        "generator_tokens": (
            LSTMGenerator(6, seq_length=4, max_iter=2).fit([[1, 2, 3, 1, 2, 4] * 3]),
            [[1, 2]],
        ),
        "seq2seq_tokens": (LSTMSeq2Seq(**COMMON).fit(TOKENS, TOKENS[:, ::-1]), TOKENS),
        "seq2seq_ragged_attention": (
            LSTMSeq2Seq(attention="dot", **COMMON).fit(
                [t[: 1 + k % 3] for k, t in enumerate(TOKENS)], [t[:2] for t in TOKENS]
            ),
            [t[:2] for t in TOKENS[:5]],
        ),
        "seq2seq_numbers": (LSTMSeq2Seq(**COMMON).fit(X, X[:, :3]), X),
    }


MODELS = models()


def outputs(model, inputs):
    if isinstance(model, LSTMGenerator):
        return model.predict_proba(inputs)
    if isinstance(model, LSTMSeq2Seq):
        out = model.predict(inputs)
        return np.concatenate([np.ravel(o) for o in out]) if isinstance(out, list) else out
    if isinstance(model, LSTMClassifier):
        return model.predict_proba(inputs)
    out = model.predict(inputs)
    return np.concatenate([np.ravel(o) for o in out]) if isinstance(out, list) else out


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_predicts_bitwise_and_keeps_training(name, tmp_path):
    model, inputs = MODELS[name]
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = lstmlearn.load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params().keys() == model.get_params().keys()
    np.testing.assert_array_equal(outputs(loaded, inputs), outputs(model, inputs))
    for attr in ("n_iter_", "loss_curve_", "history_", "t_", "_opt_step"):
        assert getattr(loaded, attr) == getattr(model, attr)
    # Training continues with the optimizer state: as the original would.
    twin = pickle.loads(pickle.dumps(model))
    if isinstance(model, LSTMGenerator):
        loaded.partial_fit("abcabd" if model.vocabulary_ else [[1, 2, 3, 4]])
        twin.partial_fit("abcabd" if model.vocabulary_ else [[1, 2, 3, 4]])
    elif isinstance(model, LSTMSeq2Seq):
        loaded.set_params(warm_start=True, max_iter=1)
        twin.set_params(warm_start=True, max_iter=1)
        data = MODELS[name][0]
        args = {
            "seq2seq_tokens": (TOKENS, TOKENS[:, ::-1]),
            "seq2seq_numbers": (X, X[:, :3]),
        }.get(name, ([t[: 1 + k % 3] for k, t in enumerate(TOKENS)], [t[:2] for t in TOKENS]))
        loaded.fit(*args)
        twin.fit(*args)
        assert data.n_iter_ == 2
    else:
        target = {"classifier_conv1d": (FRAMES, Y > 0)}.get(name)
        if name == "classifier_strings_attention":
            target = (X, np.where(Y > 0, "up", "down"))
        elif name == "classifier_ragged":
            target = ([x[: 2 + k % 3] for k, x in enumerate(X)], Y > 0)
        elif name == "regressor_per_step_bidirectional":
            target = (X, X)
        elif target is None:
            target = (X, Y)
        loaded.partial_fit(*target)
        twin.partial_fit(*target)
    np.testing.assert_array_equal(outputs(loaded, inputs), outputs(twin, inputs))
    assert loaded._opt_step == twin._opt_step > model._opt_step


def test_file_is_safetensors_with_json_metadata(tmp_path):
    from safetensors.numpy import load_file

    model, _ = MODELS["classifier_strings_attention"]
    path = tmp_path / "m.safetensors"
    model.save(path)
    tensors = load_file(path)
    assert tensors["state/_params"].dtype == np.float32
    document = json.loads(_persist._header(path.read_bytes())["__metadata__"]["lstmlearn"])
    assert document["class"] == "LSTMClassifier" and document["format_version"] == 1
    assert document["state"]["$dict"]["classes_"]["$values"] == ["down", "up"]


def test_callbacks_are_not_saved_and_say_so(tmp_path):
    model = LSTMRegressor(callbacks=lambda est, logs: False, **COMMON).fit(X, Y)
    with pytest.warns(UserWarning, match="callbacks are not saved"):
        model.save(tmp_path / "m.safetensors")
    assert lstmlearn.load(tmp_path / "m.safetensors").callbacks is None


def test_unfitted_model_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LSTMRegressor().save(tmp_path / "m.safetensors")


def test_pickle_joblib_and_skops_with_only_the_class_trusted(tmp_path):
    import skops.io as sio

    for model, inputs in MODELS.values():
        expected = outputs(model, inputs)
        np.testing.assert_array_equal(outputs(pickle.loads(pickle.dumps(model)), inputs), expected)
        joblib.dump(model, tmp_path / "m.joblib")
        np.testing.assert_array_equal(outputs(joblib.load(tmp_path / "m.joblib"), inputs), expected)
        data = sio.dumps(model)
        untrusted = sio.get_untrusted_types(data=data)
        assert untrusted == [f"{type(model).__module__}.{type(model).__name__}"]
        np.testing.assert_array_equal(outputs(sio.loads(data, trusted=untrusted), inputs), expected)


# -- atomic writes ---------------------------------------------------------------


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_an_interrupted_save_leaves_the_old_file_intact(error, tmp_path, monkeypatch):
    model, _ = MODELS["regressor"]
    path = tmp_path / "m.safetensors"
    model.save(path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise error("interrupted")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(error):
        MODELS["classifier_conv1d"][0].save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary left


def test_a_crash_while_writing_leaves_the_old_file_intact(tmp_path, monkeypatch):
    model, _ = MODELS["regressor"]
    path = tmp_path / "m.safetensors"
    model.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before


# -- hostile files ----------------------------------------------------------------------


def _document(path):
    data = path.read_bytes()
    return json.loads(_persist._header(data)["__metadata__"]["lstmlearn"])


def _rewrite(path, document, recompute=True):
    """Write `document` back as the file's metadata (recomputing the checksum)."""
    from safetensors.numpy import load, save

    tensors = load(path.read_bytes())
    document = dict(document)
    document.pop("checksum", None)
    if recompute:
        document["checksum"] = _persist._checksum(document, tensors)
    path.write_bytes(save(tensors, metadata={"lstmlearn": json.dumps(document)}))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.safetensors"
    MODELS["classifier_strings_attention"][0].save(path)
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d.update(format_version=2),
            r"format version 2; this lstmlearn .* reads version 1",
        ),
        (lambda d: d.update({"class": "os.system"}), r"class 'os.system' is not one of"),
        (lambda d: d.update(format="pickle"), r"not an lstmlearn document"),
        (
            lambda d: d["state"]["$dict"].update(n_features_in_={"$float": "nan"}),
            r"n_features_in_ = nan is not a valid size",
        ),
        (
            lambda d: d["state"]["$dict"].update(n_features_in_=3),
            r"inconsistent: _params has shape",
        ),
        (lambda d: d["state"]["$dict"].update(_hidden=[-4]), r"_hidden = \[-4\] is not a valid"),
        (
            lambda d: d["state"]["$dict"].update(_hidden=[2**20]),
            r"inconsistent",
        ),
        (lambda d: d["state"]["$dict"].pop("_opt_m"), r"tensors \['state/_opt_m'\] belong to no"),
        (lambda d: d["state"]["$dict"].update(extra=1), r"unexpected \['extra'\]"),
        (lambda d: d["params"]["$dict"].update(evil=1), r"unknown parameters \['evil'\]"),
        (
            lambda d: d["state"]["$dict"].update(_dtype={"$array": "state/_params"}),
            r"fitted attribute _dtype = .* is not a valid dtype",
        ),
        (
            lambda d: d["params"]["$dict"].update(random_state={"$tuple": []}),
            r"random_state = \(\) is not a random generator's state",
        ),
        (
            lambda d: d["params"]["$dict"].update(hidden_layer_sizes=-1),
            r"invalid parameters: The 'hidden_layer_sizes' parameter",
        ),
        (
            lambda d: d["state"]["$dict"].update(classes_={"$pickle": "gASV"}),
            r"unknown tag '\$pickle'",
        ),
        (
            lambda d: d["state"]["$dict"].update(_params={"$array": "nope"}),
            r"tensor 'nope' is missing",
        ),
        (
            lambda d: d["state"]["$dict"].update(
                classes_={"$values": ["a"], "shape": [2], "dtype": "object"}
            ),
            r"shape \[2\] does not hold 1 values",
        ),
    ],
)
def test_edited_files_give_a_clear_error(saved, edit, message):
    document = _document(saved)
    edit(document)
    _rewrite(saved, document, recompute=False)
    # The format and its version are read first (another version may checksum
    # differently); any other edit fails the checksum.
    first = "format" in message or "not an lstmlearn document" in message
    with pytest.raises(ValueError, match=message if first else "the checksum does not match"):
        lstmlearn.load(saved)
    _rewrite(saved, document, recompute=True)  # an edit that fixed the checksum too
    with pytest.raises(ValueError, match=message):
        lstmlearn.load(saved)


def test_a_file_written_before_a_parameter_existed_refits_as_it_was_fitted(saved):
    # Files of earlier releases lack the parameters added since; they load with
    # the behaviour of their time, not with a newer default.
    document = _document(saved)
    for name in ("restore_best_weights", "lr_schedule", "head_dropout", "fcn_filters"):
        document["params"]["$dict"].pop(name)
    _rewrite(saved, document)
    model = lstmlearn.load(saved)
    params = model.get_params()
    assert params["restore_best_weights"] is False and params["lr_schedule"] == "constant"
    assert params["head_dropout"] == 0.0 and params["fcn_filters"] is None
    original = MODELS["classifier_strings_attention"][0]
    assert original.get_params()["restore_best_weights"] is True
    np.testing.assert_array_equal(model.predict_proba(X), original.predict_proba(X))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"0 bytes, too short"),
        (b"\xff" * 8 + b"{}", r"the header claims \d+ bytes"),
        ((2).to_bytes(8, "little") + b"{}", r"it has no lstmlearn metadata"),
        ((3).to_bytes(8, "little") + b"{x}", r"its header is not JSON"),
    ],
)
def test_garbage_gives_a_clear_error(tmp_path, content, message):
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"is not a valid lstmlearn model file: " + message):
        lstmlearn.load(path)


def test_a_safetensors_file_from_elsewhere(tmp_path):
    from safetensors.numpy import save_file

    save_file({"weight": np.zeros(3, np.float32)}, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="no lstmlearn metadata"):
        lstmlearn.load(tmp_path / "w.safetensors")


# LSTMLEARN_FUZZ_EXAMPLES runs a deeper fuzz on demand.
FUZZ = settings(
    max_examples=int(os.environ.get("LSTMLEARN_FUZZ_EXAMPLES", 150)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


def _load_or_clear_error(path, inputs):
    try:
        model = lstmlearn.load(path)
    except ValueError as error:
        assert "is not a valid lstmlearn model file" in str(error)
    else:
        outputs(model, inputs)  # a file that loads must work


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4)
)
def test_fuzz_byte_flips(tmp_path_factory, flips):
    model, inputs = MODELS["classifier_strings_attention"]
    path = tmp_path_factory.mktemp("flip") / "m.safetensors"
    model.save(path)
    data = bytearray(path.read_bytes())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    path.write_bytes(bytes(data))
    _load_or_clear_error(path, inputs)


@FUZZ
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_fuzz_truncations(tmp_path_factory, fraction):
    model = MODELS["seq2seq_ragged_attention"][0]
    path = tmp_path_factory.mktemp("cut") / "m.safetensors"
    model.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match="is not a valid lstmlearn model file"):
        lstmlearn.load(path)


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.just({"$float": "nan"}),
    st.just({"$tuple": []}),
    st.just([]),
    st.just({"$array": "state/_params"}),
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for k, v in enumerate(value):
            yield from _paths(v, (*prefix, k))


@FUZZ
@given(
    name=st.sampled_from(["regressor", "classifier_conv1d", "generator_text", "seq2seq_tokens"]),
    pick=st.integers(0, 10**6),
    leaf=_LEAVES,
    delete=st.booleans(),
)
def test_fuzz_json_edits(tmp_path_factory, name, pick, leaf, delete):
    model, inputs = MODELS[name]
    path = tmp_path_factory.mktemp("json") / "m.safetensors"
    model.save(path)
    document = _document(path)
    paths = [p for p in _paths(document) if p and p[0] in ("params", "state")]
    where = paths[pick % len(paths)]
    parent = document
    for key in where[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = leaf
    _rewrite(path, document, recompute=True)
    _load_or_clear_error(path, inputs)
