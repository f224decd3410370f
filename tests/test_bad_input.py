"""Bad input to nn.LSTM: a clear error, or a correct conversion."""

import numpy as np
import pytest

from lstmlearn.nn import LSTM

from conftest import random_lstm


@pytest.fixture
def lstm():
    return random_lstm(3, 4, dtype=np.float32, seed=0)


@pytest.mark.parametrize("shape", [(5, 3), (2, 5, 3, 1), (3,)])
def test_wrong_ndim(lstm, shape):
    with pytest.raises(ValueError, match=r"3-D array \[batch, timesteps, features\]; got a"):
        lstm.forward(np.zeros(shape))


def test_wrong_feature_count(lstm):
    with pytest.raises(ValueError, match="has 2 features per step; this LSTM expects input_size=3"):
        lstm.forward(np.zeros((2, 5, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(lstm, bad):
    x = np.zeros((2, 5, 3))
    x[1, 2, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        lstm.forward(x)


@pytest.mark.parametrize("shape", [(0, 5, 3), (2, 0, 3)])
def test_empty_input(lstm, shape):
    with pytest.raises(ValueError, match="at least one sequence and one step"):
        lstm.forward(np.zeros(shape))


def test_non_contiguous_input_is_converted(lstm):
    x = np.random.default_rng(0).normal(size=(6, 5, 3)).astype(np.float32)
    strided = np.asfortranarray(x)[::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(lstm.forward(strided)[0], lstm.forward(x[::2].copy())[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.bool_])
def test_other_real_dtypes_are_converted(lstm, dtype):
    x = np.random.default_rng(0).integers(0, 2, size=(2, 4, 3)).astype(dtype)
    y, _ = lstm.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, lstm.forward(x.astype(np.float32))[0])


def test_lists_are_accepted(lstm):
    x = np.ones((1, 2, 3), dtype=np.float32)
    np.testing.assert_array_equal(lstm.forward(x.tolist())[0], lstm.forward(x)[0])


@pytest.mark.parametrize("x", [np.array([[["a", "b", "c"]]]), np.zeros((1, 2, 3), complex)])
def test_non_real_dtypes_are_refused(lstm, x):
    with pytest.raises(TypeError, match="must hold real numbers"):
        lstm.forward(x)


def test_wrong_state_shape(lstm):
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 2, 4\)"):
        lstm.forward(np.zeros((2, 5, 3)), h0=np.zeros((2, 4)))


def test_wrong_mask_shape(lstm):
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 5\)"):
        lstm.forward(np.zeros((2, 5, 3)), mask=np.ones((2, 4)))


def test_backward_before_forward(lstm):
    with pytest.raises(RuntimeError, match="call forward"):
        lstm.backward(np.zeros((2, 5, 4)))


def test_backward_with_wrong_dy_shape(lstm):
    lstm.forward(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 5, 4\)"):
        lstm.backward(np.zeros((2, 5, 3)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_size=0, hidden_size=3), "input_size must be a positive integer"),
        (dict(input_size=2, hidden_size=2.5), "hidden_size must be a positive integer"),
        (dict(input_size=2, hidden_size=3, num_layers=0), "num_layers"),
        (dict(input_size=2, hidden_size=3, dtype=np.int32), "float32 or float64"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LSTM(**kwargs)


def test_parameter_assignment_checks_shape_and_keeps_weights(lstm):
    before = lstm.weight_hh_l0.copy()
    with pytest.raises(ValueError, match=r"weight_hh_l0 must have shape \(16, 4\)"):
        lstm.weight_hh_l0 = np.zeros((4, 16))
    np.testing.assert_array_equal(lstm.weight_hh_l0, before)
    with pytest.raises(ValueError, match="NaN"):
        lstm.weight_hh_l0 = np.full((16, 4), np.nan)
    np.testing.assert_array_equal(lstm.weight_hh_l0, before)
    lstm.weight_hh_l0 = np.ones((16, 4))
    assert np.all(lstm.weight_hh_l0 == 1)
    with pytest.raises(AttributeError, match="no parameter"):
        lstm.weight_hh_l7 = np.ones((16, 4))


def test_parameters_write_through_to_the_engine(lstm):
    x = np.ones((1, 3, 3), np.float32)
    y_before = lstm.forward(x)[0]
    lstm.bias_ih_l0[:] += 1.0
    assert not np.array_equal(lstm.forward(x)[0], y_before)
