"""Forecast the next value of a noisy sine wave with LSTMRegressor.

Prints the held-out R² of the LSTM next to a naive forecast (the last observed
value of each window), and how long training took.

Run: python examples/regressor_sine.py
"""

import time

from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

import lstmlearn
from lstmlearn import LSTMRegressor
from lstmlearn.datasets import make_noisy_sine


def main() -> None:
    X, y = make_noisy_sine(n_samples=2000, timesteps=20, noise=0.1, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)

    model = LSTMRegressor(
        hidden_layer_sizes=32,
        learning_rate=0.01,
        max_iter=100,
        early_stopping=True,
        n_iter_no_change=5,
        restore_best_weights=True,
        random_state=0,
    )
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start

    naive = r2_score(y_test, X_test[:, -1, 0])  # tomorrow = today
    print(f"lstmlearn {lstmlearn.__version__}: LSTMRegressor on {len(X_train)} noisy sine windows")
    print(f"  epochs: {model.n_iter_}, training time: {seconds:.1f} s")
    print(f"  held-out R²  LSTM: {model.score(X_test, y_test):.3f}   naive last value: {naive:.3f}")


if __name__ == "__main__":
    main()
