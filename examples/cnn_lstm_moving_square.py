"""Classify the direction of a moving square with a CNN-LSTM.

Each sample is a short video: 6 frames of 8x8 pixels in which a 2x2 square
moves one pixel per frame to the left, right, up or down, with pixel noise. A
conv2d front end (conv_filters, conv_kernel_size=(3, 3), pool_size) reads each
frame, an LSTM reads the sequence of frame features. Prints the held-out
accuracy next to the majority-class baseline.

Run: python examples/cnn_lstm_moving_square.py
"""

import time

import numpy as np

from lstmlearn import LSTMClassifier
from lstmlearn.datasets import make_moving_square


def main() -> None:
    X_train, y_train = make_moving_square(n_samples=600, frames=6, size=8, random_state=0)
    X_test, y_test = make_moving_square(n_samples=400, frames=6, size=8, random_state=100)

    model = LSTMClassifier(
        hidden_layer_sizes=16,
        conv_filters=4,
        conv_kernel_size=(3, 3),
        pool_size=2,
        learning_rate=0.01,
        max_iter=40,
        random_state=0,
        callbacks=lambda estimator, logs: logs["loss"] < 0.05,  # good enough: stop
    )
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start

    labels, counts = np.unique(y_train, return_counts=True)
    majority = np.mean(y_test == labels[counts.argmax()])
    print(
        f"CNN-LSTM, moving square ({X_train.shape[1]} frames of "
        f"{X_train.shape[2]}x{X_train.shape[3]}): {model.n_iter_} epochs in {seconds:.2f} s"
    )
    print(
        f"  held-out accuracy  CNN-LSTM: {model.score(X_test, y_test):.3f}   "
        f"majority class: {majority:.3f}"
    )


if __name__ == "__main__":
    main()
