"""Masking: a padded batch gives the results of each sequence run alone."""

import numpy as np
import pytest

from conftest import random_lstm


@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
@pytest.mark.parametrize("layers", [1, 2])
def test_padded_batch_equals_each_sequence_alone(bidirectional, layers):
    rng = np.random.default_rng(11)
    F, H, T = 3, 5, 9
    lengths = [9, 4, 1, 7, 6]
    lstm = random_lstm(F, H, layers, bidirectional, seed=1)
    D = 2 if bidirectional else 1
    seqs = [rng.normal(size=(n, F)) for n in lengths]
    x = np.zeros((len(seqs), T, F))
    mask = np.zeros((len(seqs), T), dtype=bool)
    for b, s in enumerate(seqs):
        x[b, : len(s)] = s
        mask[b, : len(s)] = True
    x[~mask] = 123.0  # padding values must not matter

    dy = rng.normal(size=(len(seqs), T, D * H))
    dy[~mask] = 0.0  # only real steps carry a loss
    y, (h_n, c_n) = lstm.forward(x, mask=mask)
    g = lstm.backward(dy)

    for b, s in enumerate(seqs):
        n = len(s)
        y1, (h1, c1) = lstm.forward(s[None])
        g1 = lstm.backward(dy[b : b + 1, :n])
        np.testing.assert_allclose(y[b, :n], y1[0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h_n[:, b], h1[:, 0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(c_n[:, b], c1[:, 0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(g.dx[b, :n], g1.dx[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(g.dx[b, n:], 0.0)
        if not bidirectional:
            # Keras semantics: after the end the output repeats the last output.
            np.testing.assert_array_equal(y[b, n:], np.broadcast_to(y[b, n - 1], y[b, n:].shape))


def test_mask_with_missing_steps_carries_the_state():
    rng = np.random.default_rng(2)
    lstm = random_lstm(2, 4, seed=3)
    x = rng.normal(size=(1, 6, 2))
    mask = np.array([[True, True, False, False, True, True]])
    y, _ = lstm.forward(x, mask=mask)
    np.testing.assert_array_equal(y[0, 2], y[0, 1])
    np.testing.assert_array_equal(y[0, 3], y[0, 1])
    # Same as the sequence with the missing steps removed.
    y_short, _ = lstm.forward(x[:, mask[0]])
    np.testing.assert_allclose(y[0, mask[0]], y_short[0], rtol=1e-12, atol=1e-13)


def test_fully_masked_sequence_returns_initial_state():
    lstm = random_lstm(2, 3, seed=4)
    rng = np.random.default_rng(0)
    h0 = rng.normal(size=(1, 2, 3))
    c0 = rng.normal(size=(1, 2, 3))
    mask = np.array([[False] * 4, [True] * 4])
    y, (h_n, c_n) = lstm.forward(rng.normal(size=(2, 4, 2)), h0, c0, mask)
    np.testing.assert_array_equal(h_n[0, 0], h0[0, 0])
    np.testing.assert_array_equal(c_n[0, 0], c0[0, 0])
    np.testing.assert_array_equal(y[0], np.broadcast_to(h0[0, 0], (4, 3)))
