"""Small generated data sets for examples, tests and quick experiments."""

from __future__ import annotations

import numpy as np

__all__ = ["make_first_value_sequences", "make_noisy_sine"]


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
