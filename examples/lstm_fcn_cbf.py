"""LSTM-FCN against a plain LSTM on Cylinder-Bell-Funnel series (Saito 1994).

Three classes of univariate series of 128 steps: a plateau (cylinder), a ramp
up (bell) or a ramp down (funnel) over a random stretch, under noise. As in
the UCR archive's CBF set, few training series (30 per class) and many test
series. Prints each model's test accuracy and fit time.
"""

import time

import numpy as np

from lstmlearn import LSTMClassifier


def cylinder_bell_funnel(n_per_class, length=128, seed=0):
    rng = np.random.default_rng(seed)
    X, y = [], []
    t = np.arange(length)
    for label in range(3):
        for _ in range(n_per_class):
            a = rng.integers(16, 32)
            b = a + rng.integers(32, 96)
            b = min(b, length - 1)
            inside = (t >= a) & (t <= b)
            shape = inside.astype(float)
            if label == 1:  # bell: ramps up
                shape = shape * (t - a) / (b - a)
            elif label == 2:  # funnel: ramps down
                shape = shape * (b - t) / (b - a)
            X.append((6 + rng.normal()) * shape + rng.normal(size=length))
            y.append(label)
    order = rng.permutation(len(y))
    return np.array(X)[order, :, None], np.array(y)[order]


def main():
    X_train, y_train = cylinder_bell_funnel(30, seed=0)
    X_test, y_test = cylinder_bell_funnel(300, seed=1)
    # Default training settings for all three (the stopping rule ends each fit).
    models = {
        "LSTM (64 units)": LSTMClassifier(64, fcn_filters=None, random_state=0),
        # The default fcn_filters='auto' gives these 128-step series a branch of 32-64-32.
        "LSTMClassifier() (64 units, filters 32-64-32)": LSTMClassifier(random_state=0),
        "LSTM-FCN (8 units, filters 64-128-64)": LSTMClassifier(
            8, fcn_filters=(64, 128, 64), random_state=0
        ),
        "LSTM-FCN (8 units, the papers' filters 128-256-128)": LSTMClassifier(
            8, fcn_filters=(128, 256, 128), fcn_kernel_sizes=(8, 5, 3), random_state=0
        ),
    }
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        print(
            f"{name}: test accuracy {model.score(X_test, y_test):.3f}, "
            f"{model.n_iter_} epochs, fit {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
