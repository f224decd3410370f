"""Attention pooling finds one informative step among 80.

Each sequence has 80 steps of neutral filler and one informative step, at a
random position among the first 40, flagged by feature 0 and carrying the
label's sign in feature 1. With pooling='last' the LSTM must carry that value
over at least 40 steps to the end of the sequence; with pooling='attention'
the head reads a weighted sum of the states at every step, so the gradient
reaches the steps just after the informative one by a short path. Prints, for
pooling='attention', 'mean' and 'last', the epoch at which held-out accuracy
first reached 95% (counted with a callback, at most 300 epochs), and how much
attention goes to the steps from the informative one on.

Run: python examples/attention_filler.py
"""

import time

import numpy as np

from lstmlearn import LSTMClassifier
from lstmlearn.datasets import make_filler_sequences

TARGET = 0.95


def epochs_to_target(pooling: str, X, y, X_test, y_test, max_iter: int = 300):
    reached = {}

    def stop_at_target(estimator, logs):
        if estimator.score(X_test, y_test) >= TARGET:
            reached["epoch"] = logs["epoch"]
            return True
        return False

    model = LSTMClassifier(
        hidden_layer_sizes=16,
        pooling=pooling,
        learning_rate=0.01,
        max_iter=max_iter,
        n_iter_no_change=max_iter,
        random_state=0,
        callbacks=stop_at_target,
    )
    start = time.perf_counter()
    model.fit(X, y)
    return reached.get("epoch"), model, time.perf_counter() - start


def main() -> None:
    data = dict(timesteps=80, informative=1, within=40)
    X, y = make_filler_sequences(500, **data, random_state=0)
    X_test, y_test = make_filler_sequences(300, **data, random_state=100)

    print(
        f"One informative step among the first 40 of 80; epochs to {TARGET:.0%} held-out accuracy:"
    )
    models = {}
    for pooling in ("attention", "mean", "last"):
        epoch, model, seconds = epochs_to_target(pooling, X, y, X_test, y_test)
        models[pooling] = model
        shown = epoch if epoch is not None else f"not within {model.max_iter}"
        print(
            f"  pooling={pooling!r:12s} {shown} epochs "
            f"(accuracy {model.score(X_test, y_test):.3f}, {seconds:.2f} s)"
        )
    weights = models["attention"].attention_weights(X_test)
    informative = X_test[:, :, 0].argmax(axis=1)
    after = np.arange(X_test.shape[1])[None, :] >= informative[:, None]
    print(
        "  attention on the steps from the informative one to the end: "
        f"{(weights * after).sum(axis=1).mean():.2f} of the total "
        f"(those steps are {after.mean():.2f} of all steps)"
    )


if __name__ == "__main__":
    main()
