"""One-hot inputs are looked up, with the bits of the product they replace.

When the inputs of a prediction are one-hot codes (a single 1 per step, the
rest 0, or all 0 for padding), the first LSTM layer takes each step's input
projection from a table of its weights instead of multiplying. Only the
first row of a batch decides whether the tables are used at all, so a batch
that starts with a step that is not one-hot runs the product on every row:
that is the reference here. Any difference in a bit fails.
"""

import numpy as np
import pytest

from lstmlearn import LSTMClassifier, LSTMRegressor

FEATURES = 10


def one_hot(n, steps, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = np.eye(FEATURES, dtype=dtype)[rng.integers(0, FEATURES, size=(n, steps))]
    X[1, :3] = 0  # padding: all-zero steps
    return X


def decoy(steps, dtype=np.float32):
    """A sequence whose first step is not one-hot: no lookup in its batch."""
    return np.random.default_rng(9).normal(size=(1, steps, FEATURES)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize(
    ("hidden", "bidirectional"),
    # H = 24: batches of one or two project all steps ahead, larger ones run
    # projection and recurrence in one pass. H = 200: one or two rows split
    # each step's units across threads (tables per thread). Three small
    # layers run as a pipeline at one chunk of rows; a bidirectional layer
    # has a table per direction.
    [((24,), False), ((200,), False), ((16, 12, 8), False), ((20, 10), True)],
    ids=["H24", "H200", "H16-12-8", "bi-H20-10"],
)
def test_lookup_gives_the_bits_of_the_product(dtype, n_jobs, hidden, bidirectional):
    steps = 14
    X = one_hot(40, steps, seed=0, dtype=dtype)
    y = np.random.default_rng(1).normal(size=40)
    model = LSTMRegressor(
        hidden_layer_sizes=hidden,
        bidirectional=bidirectional,
        max_iter=2,
        random_state=0,
        dtype=dtype,
        n_jobs=n_jobs,
    ).fit(X, y)
    lead = decoy(steps, dtype)
    for n in (1, 2, 9, 40):
        for start in range(0, 40, n):
            rows = X[start : start + n]
            looked_up = model.predict(rows)
            multiplied = model.predict(np.concatenate([lead, rows]))[1:]
            assert looked_up.tobytes() == multiplied.tobytes(), (n, start)


def test_rows_that_are_not_one_hot_are_multiplied_among_looked_up_ones():
    # A block of rows with one step that is not one-hot takes the product;
    # the others still look up. Each row must match its own prediction.
    X = one_hot(40, 12, seed=2)
    X[17, 5, 3] = 0.5
    X[30, 0] = 2.0 * X[30, 0]  # a single nonzero that is not 1
    y = np.random.default_rng(3).normal(size=40)
    model = LSTMRegressor(hidden_layer_sizes=(32,), max_iter=2, random_state=0, n_jobs=2).fit(X, y)
    whole = model.predict(X)
    for i in range(len(X)):
        assert model.predict(X[i : i + 1]).tobytes() == whole[i : i + 1].tobytes(), i


def test_per_step_classifier_and_later_calls_see_new_weights():
    # A character model: one-hot steps in, a class per step out. The tables
    # are kept with the packed weights: after more training, the next
    # prediction must use the new weights (reference: a fresh copy).
    import pickle

    X = one_hot(64, 20, seed=4)
    y = np.random.default_rng(5).integers(0, 4, size=(64, 20))
    model = LSTMClassifier(
        hidden_layer_sizes=(48,), return_sequences=True, max_iter=1, random_state=0, n_jobs=2
    )
    model.fit(X, y)
    before = model.predict_proba(X)
    model.partial_fit(X, y)
    after = model.predict_proba(X)
    assert not np.array_equal(before, after)
    reference = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(after, reference.predict_proba(X))
    lead = decoy(20)
    multiplied = model.predict_proba(np.concatenate([lead, X]))
    np.testing.assert_array_equal(after, multiplied[1:])


@pytest.mark.parametrize("hidden", [(24,), (200,)], ids=["rows", "units"])
def test_infinite_input_weight_is_not_looked_up(hidden):
    # With an infinite weight, the product gives NaN (0 * inf) in that gate
    # for every one-hot code; a lookup would not. The table is not used.
    X = one_hot(6, 8, seed=6)
    model = LSTMRegressor(hidden_layer_sizes=hidden, max_iter=1, random_state=0).fit(X, np.zeros(6))
    net = model._network()
    name, offset, shape = net.layout()[0]
    assert name == "layer0.weight_ih_l0"
    params = model._params.copy()
    params[offset + 2 * shape[1] + 4] = np.inf  # gate row 2, feature 4

    def predict(x):
        out = np.empty((len(x), 1), dtype=np.float32)
        net.predict(params, x, None, out, 256, 2)
        return out

    for i in range(len(X)):
        looked_up = predict(X[i : i + 1])
        multiplied = predict(np.concatenate([decoy(8), X[i : i + 1]]))[1:]
        assert np.isnan(looked_up).all()
        np.testing.assert_array_equal(looked_up, multiplied)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_training_forward_looks_up_with_the_same_bits(dtype, n_threads):
    # The training pass projects all steps up front; one-hot rows are looked
    # up there too. Rows of a batch led by the decoy take the product. Each
    # sequence's outputs and final states depend on it alone (its input
    # gradient does not: a product over the whole batch sums it).
    from conftest import random_lstm

    B, T, H = 40, 13, 24
    X = one_hot(B, T, seed=7, dtype=dtype)
    lead = np.concatenate([decoy(T, dtype), X])
    lstm = random_lstm(FEATURES, H, 2, bidirectional=True, dtype=dtype, seed=8)

    def run(x):
        y, (h_n, c_n) = lstm.forward(x, n_threads=n_threads)
        return y, h_n.swapaxes(0, 1), c_n.swapaxes(0, 1)

    for a, b in zip(run(X), run(lead), strict=True):
        assert a.tobytes() == np.ascontiguousarray(b[1:]).tobytes()
