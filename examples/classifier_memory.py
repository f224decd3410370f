"""Classify sequences by their first value with LSTMClassifier.

The label is the sign of the first of 50 values; the other 49 are noise, so
the model must remember across the whole sequence. Prints the held-out
accuracy next to the majority-class baseline.

Run: python examples/classifier_memory.py
"""

import time

import numpy as np
from sklearn.model_selection import train_test_split

from lstmlearn import LSTMClassifier
from lstmlearn.datasets import make_first_value_sequences


def main() -> None:
    X, y = make_first_value_sequences(n_samples=1200, timesteps=50, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

    model = LSTMClassifier(
        hidden_layer_sizes=64,
        learning_rate=0.003,
        clipnorm=1.0,
        max_iter=150,  # the loss sits at chance first: the default stopping rule waits
        random_state=0,
        callbacks=lambda estimator, logs: logs["loss"] < 0.05,  # good enough: stop
    )
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start

    labels, counts = np.unique(y_train, return_counts=True)
    majority = np.mean(y_test == labels[counts.argmax()])
    print(f"LSTMClassifier, 50-step memory task: {model.n_iter_} epochs in {seconds:.1f} s")
    accuracy = model.score(X_test, y_test)
    print(f"  held-out accuracy  LSTM: {accuracy:.3f}   majority class: {majority:.3f}")
    print(f"  P(up) for 3 test sequences: {model.predict_proba(X_test[:3])[:, 1].round(3)}")


if __name__ == "__main__":
    main()
