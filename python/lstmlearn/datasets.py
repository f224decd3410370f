"""Small generated data sets for examples, tests and quick experiments."""

from __future__ import annotations

import numpy as np

__all__ = [
    "ADDITION_ALPHABET",
    "make_addition_strings",
    "make_echo_sequences",
    "make_first_value_sequences",
    "make_noisy_sine",
]


def make_noisy_sine(
    n_samples: int = 1000,
    timesteps: int = 20,
    noise: float = 0.1,
    random_state: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of a noisy sine wave; the target is the clean value after each window.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of windows.
    timesteps : int, default=20
        Length of each window.
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added to the inputs.
    random_state : int or None, default=None
        Seed of the phases and the noise.

    Returns
    -------
    X : ndarray of shape (n_samples, timesteps, 1)
    y : ndarray of shape (n_samples,)
    """
    rng = np.random.default_rng(random_state)
    t = rng.uniform(0, 2 * np.pi, size=n_samples)[:, None] + 0.3 * np.arange(timesteps + 1)
    X = np.sin(t[:, :timesteps]) + noise * rng.normal(size=(n_samples, timesteps))
    return X[:, :, None], np.sin(t[:, timesteps])


def make_first_value_sequences(
    n_samples: int = 1000,
    timesteps: int = 50,
    noise: float = 0.3,
    random_state: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sequences whose label is the sign of their first value; noise follows.

    A model must carry the first value across all the later steps, so this
    tests memory: a model that only sees recent steps scores about 50%.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    timesteps : int, default=50
        Length of each sequence.
    noise : float, default=0.3
        Standard deviation of the values after the first.
    random_state : int or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, timesteps, 1)
    y : ndarray of shape (n_samples,) of str
        "up" when the first value is +1, "down" when it is -1.
    """
    rng = np.random.default_rng(random_state)
    sign = rng.choice([-1.0, 1.0], size=n_samples)
    X = rng.normal(scale=noise, size=(n_samples, timesteps, 1))
    X[:, 0, 0] = sign
    return X, np.where(sign > 0, "up", "down")


#: Characters of the addition task; a character's token is its index here.
ADDITION_ALPHABET = "0123456789+"


def make_echo_sequences(
    n_samples: int = 1000,
    min_length: int = 5,
    max_length: int = 8,
    vocab_size: int = 10,
    random_state: int | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random integer sequences to be echoed: the target is the input itself.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    min_length, max_length : int, default=5, 8
        Lengths are drawn uniformly from [min_length, max_length].
    vocab_size : int, default=10
        Tokens are drawn uniformly from [0, vocab_size).
    random_state : int or None, default=None
        Seed.

    Returns
    -------
    X : list of ndarray of int
        The sequences.
    y : list of ndarray of int
        Copies of the sequences.
    """
    rng = np.random.default_rng(random_state)
    lengths = rng.integers(min_length, max_length + 1, size=n_samples)
    X = [rng.integers(0, vocab_size, size=n) for n in lengths]
    return X, [x.copy() for x in X]


def make_addition_strings(
    n_samples: int = 1000,
    max_value: int = 99,
    random_state: int | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sums written as characters: "17+25" -> "42", as token sequences.

    Each pair (a, b) with 0 <= a, b <= max_value appears at most once, so any
    split of the result holds out unseen pairs. Characters are tokens by their
    index in :data:`ADDITION_ALPHABET` ('0'-'9' are 0-9, '+' is 10).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of distinct pairs; at most (max_value + 1) ** 2.
    max_value : int, default=99
        Largest operand.
    random_state : int or None, default=None
        Seed.

    Returns
    -------
    X : list of ndarray of int
        The questions, such as the tokens of "17+25".
    y : list of ndarray of int
        The answers, such as the tokens of "42".
    """
    n_pairs = (max_value + 1) ** 2
    if n_samples > n_pairs:
        raise ValueError(f"n_samples={n_samples} exceeds the {n_pairs} distinct pairs")
    rng = np.random.default_rng(random_state)
    pairs = rng.choice(n_pairs, size=n_samples, replace=False)
    a, b = np.divmod(pairs, max_value + 1)

    def tokens(text: str) -> np.ndarray:
        return np.array([ADDITION_ALPHABET.index(c) for c in text])

    X = [tokens(f"{i}+{j}") for i, j in zip(a, b, strict=True)]
    y = [tokens(str(i + j)) for i, j in zip(a, b, strict=True)]
    return X, y
