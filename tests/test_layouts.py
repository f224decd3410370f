"""Input in the time-series ecosystem's layouts: object arrays, nested DataFrames, [n, C, T]."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline

from lstmlearn import LSTMClassifier, LSTMRegressor
from lstmlearn.preprocessing import SequenceScaler


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


FAST = dict(hidden_layer_sizes=5, max_iter=3, random_state=0, n_jobs=1)


def sequences(n=24, F=2, lengths=(4, 11), seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.normal(size=(int(rng.integers(*lengths)), F)) for _ in range(n)]
    return seqs, np.array([s[:, 0].sum() for s in seqs])


def object_array(seqs) -> np.ndarray:
    out = np.empty(len(seqs), dtype=object)
    out[:] = seqs
    return out


def assert_same_model(a, b):
    np.testing.assert_array_equal(a._params, b._params)
    assert a.loss_curve_ == b.loss_curve_


@pytest.mark.parametrize("lengths", [(4, 11), (7, 8)], ids=["ragged", "equal"])
@pytest.mark.parametrize("Estimator", [LSTMRegressor, LSTMClassifier])
def test_object_array_equals_list_bitwise(Estimator, lengths):
    seqs, y = sequences(lengths=lengths)
    if Estimator is LSTMClassifier:
        y = np.where(y > 0, "up", "down")
    X_obj = object_array(seqs)
    assert X_obj.shape == (len(seqs),)  # a 1-D object array, as aeon and sktime make
    a = Estimator(**FAST).fit(seqs, y)
    b = Estimator(**FAST).fit(X_obj, y)
    assert_same_model(a, b)
    np.testing.assert_array_equal(a.predict(seqs), b.predict(X_obj))
    np.testing.assert_array_equal(a.predict(seqs), a.predict(X_obj))
    if Estimator is LSTMClassifier:
        np.testing.assert_array_equal(a.predict_proba(seqs), b.predict_proba(X_obj))
    assert a.score(seqs, y) == b.score(X_obj, y)


def test_object_array_of_1d_sequences_and_of_lists():
    seqs, y = sequences(F=1)
    flat = [s[:, 0] for s in seqs]
    a = LSTMRegressor(**FAST).fit(flat, y)
    b = LSTMRegressor(**FAST).fit(object_array(flat), y)
    c = LSTMRegressor(**FAST).fit(object_array([s.tolist() for s in seqs]), y)
    assert_same_model(a, b)
    assert_same_model(a, c)


def test_nested_dataframe_one_column_per_feature():
    # sktime's nested_univ: a row per sequence, a column per channel, a Series per cell.
    seqs, y = sequences(F=3)
    nested = pd.DataFrame(
        {f"dim_{j}": [pd.Series(s[:, j]) for s in seqs] for j in range(3)}, index=range(len(seqs))
    )
    a = LSTMRegressor(**FAST).fit(seqs, y)
    b = LSTMRegressor(**FAST).fit(nested, y)
    assert_same_model(a, b)
    np.testing.assert_array_equal(a.predict(seqs), b.predict(nested))
    nested.iloc[2, 1] = pd.Series(np.zeros(3))
    with pytest.raises(ValueError, match="Row 2 of the nested DataFrame X holds series of shapes"):
        LSTMRegressor(**FAST).fit(nested, y)


def test_a_flat_dataframe_is_still_samples_by_timesteps():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 6)), rng.normal(size=20)
    a = LSTMRegressor(**FAST).fit(X, y)
    b = LSTMRegressor(**FAST).fit(pd.DataFrame(X), y)
    assert_same_model(a, b)


def test_sequence_scaler_takes_object_arrays_in_a_pipeline():
    seqs, y = sequences()
    a = make_pipeline(SequenceScaler(), LSTMRegressor(**FAST)).fit(seqs, y)
    b = make_pipeline(SequenceScaler(), LSTMRegressor(**FAST)).fit(object_array(seqs), y)
    assert_same_model(a[-1], b[-1])
    np.testing.assert_array_equal(a.predict(seqs), b.predict(object_array(seqs)))


def test_channels_first_sequences_of_different_lengths_are_refused_with_the_transpose():
    seqs, y = sequences(F=3)
    aeon_style = [s.T for s in seqs]  # aeon's unequal-length collection: [channels, T_i]
    with pytest.raises(ValueError, match=r"3 rows.*\[channels, timepoints\].*\[x\.T for x in X\]"):
        LSTMRegressor(**FAST).fit(aeon_style, y)
    with pytest.raises(ValueError, match=r"\[x\.T for x in X\]"):
        LSTMRegressor(**FAST).fit(object_array(aeon_style), y)


def test_channels_first_3d_array_warns_in_fit_and_explains_in_predict():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 1, 40))  # aeon's univariate [n, 1, T]
    y = rng.normal(size=20)
    with pytest.warns(UserWarning, match=r"\(20, 1, 40\).*X\.transpose\(0, 2, 1\)"):
        LSTMRegressor(**FAST).fit(X, y)
    model = LSTMRegressor(**FAST).fit(X.transpose(0, 2, 1), y)
    with pytest.raises(ValueError, match=r"1 features per step.*X\.transpose\(0, 2, 1\)"):
        model.predict(X)


@pytest.mark.parametrize(
    "shape",
    [(20, 1, 12), (20, 1, 8), (20, 3, 8), (20, 12, 29), (20, 30, 1), (20, 11, 200), (20, 6, 50)],
)
def test_no_layout_warning_where_timesteps_first_is_as_likely(shape):
    # Keras tutorials frame lags as [n, 1, lags]; short multivariate sequences are common.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=shape), rng.normal(size=shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LSTMRegressor(**FAST).fit(X, y)
        model.predict(X)


@pytest.mark.parametrize("shape", [(20, 1, 20), (20, 2, 60), (20, 6, 100), (20, 10, 100)])
def test_layout_warning_where_channels_first_is_likelier(shape):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=shape), rng.normal(size=shape[0])
    with pytest.warns(UserWarning, match="aeon's and sktime's layout"):
        model = LSTMRegressor(**FAST).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(X)  # warned once, in fit
