"""Weights in and out: from_torch, to_torch and from_keras against the source models."""

import os
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from lstmlearn import LSTMClassifier, LSTMRegressor

from conftest import require_torch

pytestmark = pytest.mark.oracle

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 7, 3)).astype(np.float32)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def require_keras():
    if os.environ.get("LSTMLEARN_REQUIRE_ORACLE") == "1":
        import keras

        return keras
    return pytest.importorskip("keras")


def torch_reference(lstm, head, x, per_step=False, classifier=False):
    """The source model as from_torch defines it: head on h_n (or every step)."""
    torch = require_torch()
    with torch.no_grad():
        out, (h_n, _) = lstm(torch.from_numpy(x))
        if per_step:
            features = out
        elif lstm.bidirectional:
            features = torch.cat([h_n[-2], h_n[-1]], dim=1)
        else:
            features = h_n[-1]
        y = head(features)
        return (torch.softmax(y, -1) if classifier else y).numpy()


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("per_step", [False, True])
def test_from_torch_regressor_predicts_what_torch_does(layers, bidirectional, per_step):
    torch = require_torch()
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    head = torch.nn.Linear(5 * (1 + bidirectional), 2)
    model = LSTMRegressor.from_torch(lstm, head, return_sequences=per_step)
    expected = torch_reference(lstm, head, X, per_step)
    assert np.abs(model.predict(X) - expected).max() <= 1e-5
    assert model.n_iter_ == 0 and model.return_sequences_ is per_step
    # Fine-tuning continues from the imported weights.
    before = model.predict(X)
    model.partial_fit(X, expected + 1)
    assert model.n_iter_ == 1 and not np.array_equal(model.predict(X), before)


def test_from_torch_classifier_labels_and_bias_free_lstm():
    torch = require_torch()
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(3, 4, bias=False, batch_first=True)
    head = torch.nn.Linear(4, 3)
    model = LSTMClassifier.from_torch(lstm, head, classes=["c", "a", "b"])
    proba = torch_reference(lstm, head, X, classifier=True)
    # classes_ is sorted; the columns follow it.
    np.testing.assert_array_equal(model.classes_, ["a", "b", "c"])
    assert np.abs(model.predict_proba(X) - proba[:, [1, 2, 0]]).max() <= 1e-5
    np.testing.assert_array_equal(model.predict(X), np.array(["c", "a", "b"])[proba.argmax(1)])


def test_from_torch_refuses_what_cannot_be_mapped():
    torch = require_torch()
    with pytest.raises(TypeError, match=r"from_torch takes a torch\.nn\.LSTM; got GRU"):
        LSTMRegressor.from_torch(torch.nn.GRU(3, 4), torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match="proj_size=2 cannot be mapped"):
        LSTMRegressor.from_torch(torch.nn.LSTM(3, 4, proj_size=2), torch.nn.Linear(2, 1))
    with pytest.raises(ValueError, match=r"the head takes 5 features; the LSTM gives 4"):
        LSTMRegressor.from_torch(torch.nn.LSTM(3, 4), torch.nn.Linear(5, 1))
    with pytest.raises(ValueError, match="a classifier needs at least 2 outputs"):
        LSTMClassifier.from_torch(torch.nn.LSTM(3, 4), torch.nn.Linear(4, 1))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier])
def test_to_torch_gives_the_same_outputs(cls, bidirectional):
    torch = require_torch()
    y = X[:, :, 0].sum(1) > 0 if cls is LSTMClassifier else X[:, :, 0].sum(1)
    model = cls((6, 6), bidirectional=bidirectional, max_iter=3, random_state=0).fit(X, y)
    module = model.to_torch()
    assert isinstance(module.lstm, torch.nn.LSTM) and isinstance(module.head, torch.nn.Linear)
    with torch.no_grad():
        got = module(torch.from_numpy(X)).numpy()
    expected = model.predict_proba(X) if cls is LSTMClassifier else model.predict(X)[:, None]
    assert np.abs(got - expected).max() <= 1e-5
    # And back again.
    again = cls.from_torch(module.lstm, module.head, classes=getattr(model, "classes_", None))
    np.testing.assert_array_equal(again._params, model._params)


def test_to_torch_refuses_what_nn_lstm_cannot_express():
    require_torch()
    base = dict(max_iter=1, random_state=0)
    y = X[:, 0, 0]
    with pytest.raises(
        ValueError, match=r"one hidden_size for every layer; this model has \[6, 4\]"
    ):
        LSTMRegressor((6, 4), **base).fit(X, y).to_torch()
    with pytest.raises(ValueError, match="merge_mode='sum'"):
        LSTMRegressor(4, bidirectional=True, merge_mode="sum", **base).fit(X, y).to_torch()
    with pytest.raises(ValueError, match="pooling='mean'"):
        LSTMRegressor(4, pooling="mean", **base).fit(X, y).to_torch()


def keras_model(keras, layers, head):
    model = keras.Sequential([keras.Input((7, 3)), *layers, head])
    return model


@pytest.mark.parametrize(
    "case", ["lstm", "stacked", "bidirectional_concat", "bidirectional_ave", "per_step", "dropout"]
)
def test_from_keras_regressor_predicts_what_keras_does(case):
    keras = require_keras()
    keras.utils.set_random_seed(0)
    L, Bi = keras.layers.LSTM, keras.layers.Bidirectional
    layers = {
        "lstm": [L(5)],
        "stacked": [L(6, return_sequences=True), L(4)],
        "bidirectional_concat": [Bi(L(5, return_sequences=True)), Bi(L(3))],
        "bidirectional_ave": [Bi(L(5), merge_mode="ave")],
        "per_step": [L(5, return_sequences=True)],
        "dropout": [L(5, return_sequences=True), keras.layers.Dropout(0.3), L(4)],
    }[case]
    source = keras_model(keras, layers, keras.layers.Dense(2))
    # Non-zero biases, so that the bias mapping is tested too.
    for layer in source.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights(
                [w + 0.1 * np.random.default_rng(1).normal(size=w.shape) for w in weights]
            )
    expected = np.asarray(source.predict(X, verbose=0))
    model = LSTMRegressor.from_keras(source)
    assert np.abs(model.predict(X) - expected).max() <= 1e-5
    assert model.return_sequences_ is (case == "per_step")
    model.partial_fit(X, expected)
    assert model.n_iter_ == 1


@pytest.mark.parametrize("activation, units", [("softmax", 3), ("sigmoid", 1)])
def test_from_keras_classifier(activation, units):
    keras = require_keras()
    keras.utils.set_random_seed(0)
    source = keras_model(keras, [keras.layers.LSTM(4)], keras.layers.Dense(units, activation))
    proba = np.asarray(source.predict(X, verbose=0))
    if units == 1:
        proba = np.concatenate([1 - proba, proba], axis=1)
    model = LSTMClassifier.from_keras(source)
    assert np.abs(model.predict_proba(X) - proba).max() <= 1e-5
    np.testing.assert_array_equal(model.predict(X), proba.argmax(1))


def test_from_keras_refuses_what_cannot_be_mapped():
    keras = require_keras()
    L, D = keras.layers.LSTM, keras.layers.Dense
    cases = [
        ([keras.layers.GRU(4)], D(1), r"layer 0 is a GRU"),
        ([L(4, activation="relu")], D(1), r"activation='relu'; lstmlearn's LSTM computes tanh"),
        ([L(4, go_backwards=True)], D(1), r"go_backwards=True"),
        ([L(4)], D(1, activation="relu"), r"Dense head must be linear; this one uses 'relu'"),
        ([L(4), L(3)], D(1), r"return_sequences=False but feeds another LSTM layer"),
    ]
    for layers, head, message in cases:
        try:
            source = keras_model(keras, layers, head)
        except ValueError:  # Keras itself refuses to build some of them
            continue
        with pytest.raises(ValueError, match=message):
            LSTMRegressor.from_keras(source)
    stateful = keras.Sequential([keras.Input((7, 3), batch_size=16), L(4, stateful=True), D(1)])
    with pytest.raises(ValueError, match="is stateful"):
        LSTMRegressor.from_keras(stateful)
    with pytest.raises(ValueError, match="softmax"):
        LSTMClassifier.from_keras(keras_model(keras, [L(4)], D(3)))
