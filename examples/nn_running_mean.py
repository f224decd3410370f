"""Train the low-level LSTM by hand: learn the running mean of a noisy signal.

The engine returns every gradient, so any training loop can drive it. Here a
one-layer LSTM plus a linear read-out learns to output, at every step, the
mean of the inputs seen so far; plain NumPy Adam updates the weights.

Run: python examples/nn_running_mean.py
"""

import time

import numpy as np

from lstmlearn.nn import LSTM


def make_data(rng: np.random.Generator, n: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, steps, 1)).astype(np.float32)
    y = np.cumsum(x, axis=1) / np.arange(1, steps + 1, dtype=np.float32)[None, :, None]
    return x, y


def main() -> None:
    rng = np.random.default_rng(0)
    x, y = make_data(rng, 512, 20)
    x_test, y_test = make_data(rng, 256, 20)
    hidden = 16
    lstm = LSTM(1, hidden, random_state=0)
    w_out = rng.normal(scale=0.1, size=(hidden, 1)).astype(np.float32)

    params = [lstm.flat_parameters, w_out]  # updated in place
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    lr, beta1, beta2 = 0.01, 0.9, 0.999

    def test_mse() -> float:
        h, _ = lstm.forward(x_test)
        return float(np.mean((h @ w_out - y_test) ** 2))

    baseline = float(np.mean(y_test**2))  # always predicting 0
    print(f"test MSE before training: {test_mse():.4f} (predicting zero: {baseline:.4f})")
    start = time.perf_counter()
    step = 0
    for _epoch in range(40):
        for batch in np.array_split(rng.permutation(len(x)), 16):
            h, _ = lstm.forward(x[batch])
            err = h @ w_out - y[batch]  # [b, T, 1]
            d_out = 2 * err / err.size
            grads = lstm.backward(d_out @ w_out.T)
            g_w = np.einsum("bth,bto->ho", h, d_out)
            g_lstm = np.concatenate([g.ravel() for g in grads.parameters.values()])
            step += 1
            for p, g, (m, v) in zip(params, [g_lstm, g_w], moments, strict=True):
                m[:] = beta1 * m + (1 - beta1) * g.reshape(p.shape)
                v[:] = beta2 * v + (1 - beta2) * g.reshape(p.shape) ** 2
                p -= lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8)
    seconds = time.perf_counter() - start
    print(f"test MSE after 40 epochs:  {test_mse():.4f} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
