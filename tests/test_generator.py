"""LSTMGenerator: the Zen of Python experiment, token sequences, sampling and bad input."""

import pickle
from collections import Counter

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from lstmlearn import LSTMGenerator
from lstmlearn.datasets import zen_of_python as zen

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def words(text):
    return [w.strip(".,!?-*'\"").lower() for w in text.split() if w.strip(".,!?-*'\"")]


@pytest.fixture(scope="module")
def zen_model():
    text = zen()
    model = LSTMGenerator(64, seq_length=40, step=2, max_iter=40, random_state=0)
    return text, model.fit(text)


def test_zen_perplexity_well_below_unigram(zen_model):
    text, model = zen_model
    counts = Counter(text)
    unigram = np.exp(-np.mean([np.log(counts[c] / len(text)) for c in text[1:]]))
    perplexity = model.perplexity(text)
    print(f"perplexity {perplexity:.2f}, unigram {unigram:.2f}")
    assert perplexity < unigram / 4


def test_zen_generation_is_mostly_real_words(zen_model):
    text, model = zen_model
    sample = model.generate("Beautiful is ", length=300, temperature=0.5, random_state=1)
    known = set(words(text))
    generated = words(sample)
    real = np.mean([w in known for w in generated])
    print(f"{real:.0%} real words: {sample!r}")
    assert len(sample) == 300 and set(sample) <= set(model.vocabulary_)
    assert real > 0.7


def test_periodic_tokens_greedy_continuation():
    seq = np.tile(np.arange(7), 30)
    model = LSTMGenerator(24, seq_length=10, max_iter=60, learning_rate=0.02, random_state=0)
    model.fit(seq)
    assert model.vocabulary_ is None and model.n_tokens_ == 7
    out = model.generate([3, 4, 5], length=20, temperature=0)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, (np.arange(20) + 6) % 7)
    assert model.perplexity(seq) < 1.2


def test_predict_is_the_greedy_next_token():
    seq = np.tile(np.arange(5), 20)
    model = LSTMGenerator(16, seq_length=8, max_iter=40, learning_rate=0.02, random_state=0)
    model.fit(seq)
    np.testing.assert_array_equal(model.predict([[0, 1, 2], [4], [2, 3, 4, 0]]), [3, 0, 1])
    proba = model.predict_proba(np.array([[1, 2, 3]]))
    assert proba.shape == (1, 5) and np.isclose(proba.sum(), 1.0) and proba.argmax() == 4
    text_model = LSTMGenerator(16, seq_length=8, max_iter=40, learning_rate=0.02, random_state=0)
    text_model.fit("abcde" * 20)
    assert text_model.predict("abc") == "d"
    assert text_model.predict(["ab", "e"]).tolist() == ["c", "a"]
    first = text_model.generate("abc", length=1, temperature=0)
    assert first == text_model.predict("abc")


def test_score_matches_step_by_step_prediction():
    """score() reads all steps of a window at once; the same must come from prefixes."""
    text = "abcabcaabbcc" * 3
    model = LSTMGenerator(8, seq_length=50, max_iter=3, random_state=0, dtype=np.float64)
    model.fit(text)
    tokens = [model.vocabulary_.index(c) for c in text]
    logp = [np.log(model._next_proba(np.array(tokens[:i]))[tokens[i]]) for i in range(1, len(text))]
    assert model.score(text) == pytest.approx(np.mean(logp), rel=1e-10)
    assert model.perplexity(text) == pytest.approx(np.exp(-np.mean(logp)), rel=1e-10)


def test_score_counts_every_token_once_across_windows():
    """With a short context, windows must neither skip nor repeat tokens."""
    text = "the quick brown fox jumps over the lazy dog"
    model = LSTMGenerator(8, seq_length=4, max_iter=2, random_state=0, dtype=np.float64)
    model.fit(text)
    tokens = [model.vocabulary_.index(c) for c in text]
    logp = []
    for i in range(1, len(tokens)):
        start = ((i - 1) // 4) * 4  # the window that predicts token i
        logp.append(np.log(model._next_proba(np.array(tokens[start:i]))[tokens[i]]))
    assert model.score(text) == pytest.approx(np.mean(logp), rel=1e-10)


def test_sampling_is_reproducible_and_temperature_matters(zen_model):
    _, model = zen_model
    a = model.generate("Simple ", 80, temperature=1.0, random_state=3)
    b = model.generate("Simple ", 80, temperature=1.0, random_state=3)
    assert a == b
    greedy = {model.generate("Simple ", 40, temperature=0, random_state=s) for s in range(3)}
    assert len(greedy) == 1
    hot = {model.generate("Simple ", 40, temperature=5.0, random_state=s) for s in range(3)}
    assert len(hot) == 3
    assert model.generate(length=5, random_state=0) and model.generate("x", length=0) == ""


def test_several_texts_and_token_lists():
    model = LSTMGenerator(8, seq_length=5, max_iter=2, random_state=0)
    model.fit(["hello world", "a", "hold on"])
    assert "".join(model.vocabulary_) == " adehlnorw"
    model = LSTMGenerator(8, seq_length=5, max_iter=2, random_state=0, n_tokens=12)
    model.fit([[1, 2, 3, 4], [5, 6, 7, 8, 9, 1, 2]])
    assert model.n_tokens_ == 12 and model.generate([1], 3, random_state=0).max() < 12


def test_partial_fit_keeps_vocabulary_and_pickle_round_trip(tmp_path):
    model = LSTMGenerator(8, seq_length=6, max_iter=2, random_state=0)
    model.partial_fit("banana bandana")
    model.partial_fit("ban ana")
    assert model.n_iter_ == 2
    path = tmp_path / "gen.pkl"
    path.write_bytes(pickle.dumps(model))
    loaded = pickle.loads(path.read_bytes())
    assert loaded.generate("ban", 30, random_state=0) == model.generate("ban", 30, random_state=0)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        ("", "empty text"),
        ([], "X is empty"),
        (None, "X is empty"),
        ("a", "too short"),
        (np.array([[0.5, 1.0]]), "Tokens must be integers"),
        (np.array([1, -1, 2]), "Negative values in data: token -1 at position 1"),
        (np.array([1.0, np.nan]), "NaN"),
        (["ab", [1, 2]], "mixes texts and token sequences"),
        (np.zeros((2, 3, 4), dtype=int), "3-D array"),
    ],
)
def test_bad_training_input(X, match):
    with pytest.raises(ValueError, match=match):
        LSTMGenerator(4, max_iter=1).fit(X)


def test_bad_use_of_a_fitted_model_leaves_it_intact():
    model = LSTMGenerator(8, seq_length=5, max_iter=2, random_state=0).fit("abcabcabc")
    params = model._params.copy()
    with pytest.raises(ValueError, match=r"Characters \['z'\] are not in the vocabulary"):
        model.partial_fit("abz")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        model.generate("xyz")
    with pytest.raises(ValueError, match="seed is empty"):
        model.generate("")
    with pytest.raises(ValueError, match="seed must be a str"):
        model.generate([0, 1])
    with pytest.raises(ValueError, match="length must be"):
        model.generate("a", length=-1)
    with pytest.raises(ValueError, match="temperature must be"):
        model.generate("a", temperature=-0.5)
    with pytest.raises(ValueError, match="fitted on text"):
        model.score(np.array([0, 1, 2]))
    np.testing.assert_array_equal(model._params, params)
    assert "".join(model.vocabulary_) == "abc" and model.n_iter_ == 2

    tokens = LSTMGenerator(8, seq_length=5, max_iter=1, random_state=0).fit([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=r"Token 7 at position 1 of sequence 0 is outside"):
        tokens.partial_fit([1, 7])
    with pytest.raises(ValueError, match=r"tokens must be in \[0, 3\)"):
        tokens.generate([5])
    assert tokens.n_tokens_ == 3


def test_zen_of_python_text():
    text = zen()
    assert len(text) == 856 and text.startswith("The Zen of Python, by Tim Peters")


def test_generate_and_score_before_fit():
    with pytest.raises(NotFittedError):
        LSTMGenerator().generate("a")
    with pytest.raises(NotFittedError):
        LSTMGenerator().score("abc")
    with pytest.raises(NotFittedError):
        LSTMGenerator().predict("abc")
