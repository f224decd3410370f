"""A bidirectional LSTM against a forward-only one of the same size.

Per-step labels: the label of step t is 1 once the running sum of the values
so far exceeds half of the whole sequence's sum. The label depends on values
that come after t, which only the backward direction has seen; a forward-only
model must guess them. The two models have about the same number of
parameters (8 units per direction against 12 units). Prints both per-step
accuracies on held-out sequences.

Run: python examples/bidirectional_cumsum.py
"""

import time
import warnings

from sklearn.exceptions import ConvergenceWarning

from lstmlearn import LSTMClassifier
from lstmlearn.datasets import make_cumsum_threshold


def n_parameters(model: LSTMClassifier) -> int:
    """LSTM weights and biases (two bias vectors, as PyTorch) plus the dense head."""
    inputs, units = model.n_features_in_, model.hidden_layer_sizes
    directions = 2 if model.bidirectional else 1
    lstm = directions * (4 * units * (inputs + units) + 8 * units)
    return lstm + (directions * units + 1) * len(model.classes_)


def main() -> None:
    X_train, y_train = make_cumsum_threshold(n_samples=1000, timesteps=10, random_state=0)
    X_test, y_test = make_cumsum_threshold(n_samples=500, timesteps=10, random_state=100)

    warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget of 30 epochs
    print("Cumulative-sum threshold, 10 steps, per-step labels (held-out accuracy):")
    for name, bidirectional, units in (("bidirectional", True, 8), ("forward-only", False, 12)):
        model = LSTMClassifier(
            hidden_layer_sizes=units,
            bidirectional=bidirectional,
            return_sequences=True,
            learning_rate=0.01,
            max_iter=30,
            n_iter_no_change=30,
            random_state=0,
        )
        start = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        print(
            f"  {name:14s} {units:2d} units, {n_parameters(model)} parameters: "
            f"{model.score(X_test, y_test):.4f}  ({model.n_iter_} epochs, {seconds:.2f} s)"
        )


if __name__ == "__main__":
    main()
