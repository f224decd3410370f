"""LSTMGenerator.generate(carry_state=True): sampling in the engine, one step per token."""

import pickle

import numpy as np
import pytest
from sklearn.utils import check_random_state

from lstmlearn import LSTMGenerator, LSTMRegressor
from lstmlearn.datasets import zen_of_python as zen

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def draw(p, u, temperature):
    """One token from probabilities p, as the engine draws it from the logits."""
    if temperature == 0:
        return int(np.argmax(p))
    logp = np.log(np.maximum(p, 1e-300))
    w = np.exp((logp - logp.max()) / temperature)
    cdf = np.cumsum(w)
    k = int(np.searchsorted(cdf, u * cdf[-1], side="right"))  # first cdf > u * total
    return min(k, int(np.flatnonzero(w > 0)[-1]))


def stream_reference(model, seed, length, temperature, random_state):
    """The stateful loop in Python: Stream.step per token, the same uniforms."""
    uniforms = check_random_state(random_state).random_sample(length)
    stream = model.stream(1)
    for t in seed:
        p = stream.step(int(t))
    out = []
    for u in uniforms:
        token = draw(p, u, temperature)
        out.append(token)
        p = stream.step(token)
    return np.array(out, dtype=np.int64)


def window_reference(model, seed, length, temperature, random_state):
    """generate() as it was before carry_state: the sliding window, rng.choice."""
    rng = check_random_state(random_state)
    context = list(seed[-model.seq_length :])
    out = []
    for _ in range(length):
        if model.vocabulary_ is None:
            p = model.predict_proba(np.asarray(context)[None, :])[0]
        else:
            p = model.predict_proba("".join(model.vocabulary_[t] for t in context))[0]
        if temperature == 0:
            token = int(p.argmax())
        else:
            logp = np.log(np.maximum(p, 1e-300))
            q = np.exp((logp - logp.max()) / temperature)
            token = int(rng.choice(len(q), p=q / q.sum()))
        out.append(token)
        context = [*context, token][-model.seq_length :]
    return np.array(out, dtype=np.int64)


def token_ids(model, text):
    index = {c: k for k, c in enumerate(model.vocabulary_)}
    return np.array([index[c] for c in text], dtype=np.int64)


@pytest.fixture(scope="module")
def zen_text_model():
    # 128 units over the Zen's vocabulary: a step's work splits among threads.
    return LSTMGenerator(128, seq_length=20, step=3, max_iter=3, random_state=0).fit(zen())


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["float32", "float64"])
def stacked_token_model(request):
    rng = np.random.RandomState(0)
    seq = np.concatenate([np.tile(np.arange(9), 12), rng.randint(0, 11, size=60)])
    model = LSTMGenerator((24, 16), seq_length=8, max_iter=8, random_state=0, dtype=request.param)
    return model.fit(seq)


@pytest.mark.parametrize("temperature", [0, 0.6, 1.0, 1.7])
def test_tokens_are_those_of_a_stream_step_loop(stacked_token_model, temperature):
    model = stacked_token_model
    seed = [3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 10, 9]  # longer than seq_length: read whole
    for random_state in range(3):
        got = model.generate(seed, 60, temperature, random_state=random_state, carry_state=True)
        want = stream_reference(model, seed, 60, temperature, random_state)
        assert got.dtype == np.int64 and got.shape == (60,)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("temperature", [0, 0.5, 1.0])
def test_text_model_matches_the_stream_loop(zen_text_model, temperature):
    model = zen_text_model
    seed = "Beautiful is better than ugly. Explicit is "
    got = model.generate(seed, 120, temperature, random_state=7, carry_state=True)
    assert isinstance(got, str) and len(got) == 120 and set(got) <= set(model.vocabulary_)
    want = stream_reference(model, token_ids(model, seed), 120, temperature, 7)
    assert got == "".join(model.vocabulary_[t] for t in want)


def test_temperature_zero_is_greedy_and_ignores_the_random_state(zen_text_model):
    model = zen_text_model
    greedy = {model.generate("Simple ", 50, 0, random_state=s, carry_state=True) for s in range(3)}
    assert len(greedy) == 1
    stream = model.stream(1)
    for c in "Simple ":
        p = stream.step(c)
    expected = []
    for _ in range(50):
        expected.append(model.vocabulary_[int(np.argmax(p))])
        p = stream.step(expected[-1])
    assert greedy == {"".join(expected)}
    # A tiny temperature tends to greedy rather than overflowing.
    for tiny in (1e-30, 5e-324):
        assert model.generate("Simple ", 50, tiny, random_state=0, carry_state=True) in greedy


def test_a_wide_layer_split_among_threads_gives_the_same_tokens():
    # 256 units: sampling's steps split among threads (n_jobs 2), as do the
    # reference's stream steps (from fewer units): the same bits either way.
    model = LSTMGenerator(256, seq_length=10, max_iter=1, random_state=0, n_jobs=2)
    model.fit(zen()[:300])
    want = stream_reference(model, token_ids(model, "The "), 80, 1.0, 4)
    for n_jobs in (2, 1):
        got = model.set_params(n_jobs=n_jobs).generate("The ", 80, random_state=4, carry_state=True)
        assert got == "".join(model.vocabulary_[t] for t in want)


def test_reproducible_and_the_same_for_any_n_jobs(zen_text_model):
    model = zen_text_model
    runs = {}
    for n_jobs in (1, 2, -1):
        model.set_params(n_jobs=n_jobs)
        runs[n_jobs] = model.generate("Errors ", 200, 1.0, random_state=11, carry_state=True)
        assert model.generate("Errors ", 200, 1.0, random_state=11, carry_state=True) == runs[1]
    model.set_params(n_jobs=None)
    assert len(set(runs.values())) == 1
    hot = {model.generate("Errors ", 40, 2.0, random_state=s, carry_state=True) for s in range(3)}
    assert len(hot) == 3
    rng = np.random.RandomState(5)
    a = model.generate("Errors ", 30, random_state=rng, carry_state=True)
    b = model.generate("Errors ", 30, random_state=rng, carry_state=True)
    assert a != b  # a RandomState instance advances


@pytest.mark.parametrize("temperature", [0, 0.8, 1.0])
def test_default_window_sampling_is_unchanged(zen_text_model, stacked_token_model, temperature):
    model = zen_text_model
    seed = "Now is better than never. "
    want = window_reference(model, token_ids(model, seed), 40, temperature, 3)
    text = "".join(model.vocabulary_[t] for t in want)
    assert model.generate(seed, 40, temperature, random_state=3) == text
    assert model.generate(seed, 40, temperature, random_state=3, carry_state=False) == text
    tokens = stacked_token_model
    want = window_reference(tokens, np.array([1, 2, 3]), 30, temperature, 0)
    np.testing.assert_array_equal(tokens.generate([1, 2, 3], 30, temperature, random_state=0), want)


def test_default_seed_length_zero_and_pickle(stacked_token_model, zen_text_model):
    model = stacked_token_model
    got = model.generate(length=25, random_state=1, carry_state=True)
    np.testing.assert_array_equal(got, stream_reference(model, model._default_seed, 25, 1.0, 1))
    empty = model.generate([1], 0, carry_state=True)
    assert empty.dtype == np.int64 and empty.shape == (0,)
    assert zen_text_model.generate("a", 0, carry_state=True) == ""
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.generate(length=25, random_state=1, carry_state=True), got)


def test_bad_arguments(zen_text_model, stacked_token_model):
    model = zen_text_model
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="carry_state must be True or False"):
            model.generate("a", 5, carry_state=bad)
    with pytest.raises(ValueError, match="length must be"):
        model.generate("a", -1, carry_state=True)
    for temperature in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="temperature must be"):
            model.generate("a", 5, temperature, carry_state=True)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        model.generate("a\x00", 5, carry_state=True)
    with pytest.raises(ValueError, match="seed is empty"):
        model.generate("", 5, carry_state=True)
    with pytest.raises(ValueError, match="seed must be a str"):
        model.generate([1, 2], 5, carry_state=True)
    with pytest.raises(ValueError, match=r"tokens must be in \[0, 11\)"):
        stacked_token_model.generate([3, 11], 5, carry_state=True)


def test_engine_refuses_what_it_cannot_sample(stacked_token_model):
    engine = stacked_token_model.stream(1)._engine
    u = np.array([0.5, 0.25])
    with pytest.raises(IndexError, match=r"seed token 11 is outside the vocabulary \[0, 11\)"):
        engine.sample(np.array([1, 11]), u, 1.0, 1)
    with pytest.raises(ValueError, match="at least one token"):
        engine.sample(np.array([], dtype=np.int64), u, 1.0, 1)
    with pytest.raises(ValueError, match=r"uniforms must be in \[0, 1\)"):
        engine.sample(np.array([1]), np.array([0.5, 1.0]), 1.0, 1)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        engine.sample(np.array([1]), u, -1.0, 1)
    X = np.random.RandomState(0).randn(8, 5, 3)
    regressor = LSTMRegressor(4, max_iter=1, random_state=0).fit(X, X[:, -1, 0])
    with pytest.raises(ValueError, match="needs a next-token model"):
        regressor.stream(1)._engine.sample(np.array([0]), u, 1.0, 1)


def test_non_finite_input_weights_fall_back_and_fail_clearly():
    model = LSTMGenerator(8, seq_length=5, max_iter=2, random_state=0).fit("abcabcabcab")
    model._params[0] = np.inf  # in W_ih: no lookup table, the product gives NaN
    with pytest.raises(ValueError, match="not finite"):
        model.generate("ab", 5, carry_state=True)


def test_the_sampling_stream_is_kept_until_the_parameters_change():
    # generate keeps one engine stream (its packed weights) between calls; a
    # fit, a partial_fit or another n_jobs gives a new one, and what it samples
    # always follows the current parameters.
    text = zen()[:400]
    model = LSTMGenerator(32, seq_length=10, max_iter=2, random_state=0).fit(text)
    first = model.generate("The ", 60, random_state=3, carry_state=True)
    stream = model.__dict__["_sampler"][1]
    assert model.generate("The ", 60, random_state=3, carry_state=True) == first
    assert model.__dict__["_sampler"][1] is stream
    model.partial_fit(text)
    after = model.generate("The ", 60, random_state=3, carry_state=True)
    assert model.__dict__["_sampler"][1] is not stream
    want = stream_reference(model, token_ids(model, "The "), 60, 1.0, 3)
    assert after == "".join(model.vocabulary_[t] for t in want)
    stream = model.__dict__["_sampler"][1]
    model.set_params(n_jobs=1).generate("The ", 5, random_state=3, carry_state=True)
    assert model.__dict__["_sampler"][1] is not stream
    # Not part of the saved state: a loaded model samples the same.
    assert "_sampler" not in model.__getstate__()
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.generate("The ", 60, random_state=3, carry_state=True) == after


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_reduced_inference_precision_samples_with_the_reduced_weights(precision):
    # The tokens are those of a stream(1) at the same precision; the draws
    # near a boundary of the cumulative weights tell the precisions apart.
    model = LSTMGenerator(128, seq_length=20, max_iter=2, random_state=0).fit(zen())
    full = model.generate("Errors ", 400, 1.5, random_state=2, carry_state=True)
    model.set_inference_precision(precision)
    got = model.generate("Errors ", 400, 1.5, random_state=2, carry_state=True)
    want = stream_reference(model, token_ids(model, "Errors "), 400, 1.5, 2)
    assert got == "".join(model.vocabulary_[t] for t in want)
    assert got != full
    # Back to float32: the kept stream follows the setting.
    assert (
        model.set_inference_precision("float32").generate(
            "Errors ", 400, 1.5, random_state=2, carry_state=True
        )
        == full
    )
