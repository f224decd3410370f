"""Small generated data sets for examples, tests and quick experiments."""

from __future__ import annotations

import numpy as np

__all__ = [
    "ADDITION_ALPHABET",
    "make_addition_strings",
    "make_cumsum_threshold",
    "make_echo_sequences",
    "make_filler_sequences",
    "make_first_value_sequences",
    "make_moving_square",
    "make_noisy_sine",
    "zen_of_python",
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


def make_moving_square(
    n_samples: int = 1000,
    frames: int = 8,
    size: int = 8,
    square: int = 2,
    noise: float = 0.1,
    random_state: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Videos of a square moving one pixel per frame; the label is its direction.

    The square starts where it can move ``frames - 1`` pixels in its direction
    without leaving the frame; its position across the motion is random.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of videos.
    frames : int, default=8
        Frames per video; at most ``size - square + 1``.
    size : int, default=8
        Height and width of a frame.
    square : int, default=2
        Side of the square.
    noise : float, default=0.1
        Standard deviation of Gaussian noise on every pixel.
    random_state : int or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, frames, size, size)
    y : ndarray of shape (n_samples,) of str
        "left", "right", "up" or "down".
    """
    travel = size - square
    if frames - 1 > travel:
        raise ValueError(f"frames must be at most size - square + 1 = {travel + 1}; got {frames}")
    rng = np.random.default_rng(random_state)
    names = np.array(["left", "right", "up", "down"])
    direction = rng.integers(0, 4, size=n_samples)
    X = noise * rng.normal(size=(n_samples, frames, size, size))
    slack = travel - (frames - 1)  # free start positions along the motion
    for n in range(n_samples):
        d = direction[n]
        start = rng.integers(0, slack + 1)
        across = rng.integers(0, travel + 1)
        for f in range(frames):
            along = start + f if d in (1, 3) else travel - start - f
            row, col = (across, along) if d < 2 else (along, across)
            X[n, f, row : row + square, col : col + square] += 1.0
    return X, names[direction]


def make_cumsum_threshold(
    n_samples: int = 1000,
    timesteps: int = 10,
    random_state: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step labels that depend on the whole sequence (bidirectional task).

    Values are uniform in [0, 1]. The label of step t is 1 when the running
    sum up to t exceeds half the sequence's total sum, so it depends on values
    that come after t: a forward-only model must guess the rest of the
    sequence, a bidirectional one sees it.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    timesteps : int, default=10
        Length of each sequence.
    random_state : int or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, timesteps, 1)
    y : ndarray of shape (n_samples, timesteps) of int
    """
    rng = np.random.default_rng(random_state)
    X = rng.uniform(size=(n_samples, timesteps))
    running = np.cumsum(X, axis=1)
    y = (running > 0.5 * running[:, -1:]).astype(int)
    return X[:, :, None], y


def make_filler_sequences(
    n_samples: int = 1000,
    timesteps: int = 60,
    informative: int = 3,
    features: int = 4,
    within: int | None = None,
    random_state: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Long sequences of neutral filler with a few informative steps.

    Each sequence has ``informative`` steps, at random positions (among the
    first ``within`` steps), flagged by
    feature 0 = 1 and carrying a value in feature 1 of +1 or -1; every other
    step is filler (feature 0 = 0, small noise elsewhere). The label is 1 when
    the informative values sum to more than 0 (``informative`` is odd, so there
    are no ties).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    timesteps : int, default=60
        Length of each sequence.
    informative : int, default=3
        Informative steps per sequence (odd).
    features : int, default=4
        Features per step (at least 2).
    within : int or None, default=None
        Informative steps fall among the first ``within`` steps (None: anywhere),
        so that a model reading to the end must carry them further.
    random_state : int or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_samples, timesteps, features)
    y : ndarray of shape (n_samples,) of int
    """
    within = timesteps if within is None else within
    if informative % 2 == 0 or not informative <= within <= timesteps or features < 2:
        raise ValueError(
            "informative must be odd and at most within, within at most timesteps, and "
            "features at least 2"
        )
    rng = np.random.default_rng(random_state)
    X = 0.1 * rng.normal(size=(n_samples, timesteps, features))
    X[:, :, 0] = 0.0
    values = rng.choice([-1.0, 1.0], size=(n_samples, informative))
    for n in range(n_samples):
        steps = rng.choice(within, size=informative, replace=False)
        X[n, steps, 0] = 1.0
        X[n, steps, 1] = values[n]
    return X, (values.sum(axis=1) > 0).astype(int)


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


def zen_of_python() -> str:
    """The Zen of Python, the text of the standard library's ``this`` module.

    Returns
    -------
    text : str
        856 characters, 19 aphorisms after a title line.
    """
    import codecs
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the text
        import this
    return codecs.decode(this.s, "rot13")
