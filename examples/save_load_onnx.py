"""Save a fitted LSTMRegressor, load it back, and export it to ONNX.

Fits a small model on noisy sine windows; saves it to one safetensors file and
loads it (predictions equal to the bit, training continues); then writes it
to an .onnx file, runs the file in ONNX Runtime and prints the largest
difference from ``predict``, for windows of one length and for windows of
different lengths fed with ``sequence_lens``.

Needs: pip install "lstmlearn[onnx]" (onnx and onnxruntime).
Run: python examples/save_load_onnx.py
"""

import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
from sklearn.exceptions import ConvergenceWarning

import lstmlearn
from lstmlearn import LSTMRegressor
from lstmlearn.datasets import make_noisy_sine


def main() -> None:
    X, y = make_noisy_sine(n_samples=500, timesteps=20, noise=0.1, random_state=0)
    with warnings.catch_warnings():  # a short fit: the point is the export
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LSTMRegressor(hidden_layer_sizes=16, max_iter=20, random_state=0).fit(X, y)
    X_new = X[:64].astype(np.float32)

    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / "sine.safetensors"
        model.save(saved)
        loaded = lstmlearn.load(saved)
        same = np.array_equal(loaded.predict(X_new), model.predict(X_new))
        print(f"wrote {saved.name}: {saved.stat().st_size} bytes; loaded predicts the same bits: "
              f"{same}")  # fmt: skip
        loaded.partial_fit(X[:100], y[:100])  # training continues with the optimizer state
        print(f"  one more epoch on the loaded model: n_iter_ {model.n_iter_} -> {loaded.n_iter_}")

        path = Path(folder) / "sine.onnx"
        model.to_onnx(path, sequence_lens=True)
        print(f"wrote {path.name}: {path.stat().st_size} bytes")
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    lengths = np.full(len(X_new), X_new.shape[1], dtype=np.int32)
    (got,) = session.run(None, {"X": X_new, "sequence_lens": lengths})
    print(f"  {len(X_new)} windows of 20 steps: max |onnx - predict| = "
          f"{np.abs(got - model.predict(X_new)).max():.2g}")  # fmt: skip

    # Windows of 5 to 20 steps, padded at the end; sequence_lens says how long each is.
    rng = np.random.default_rng(0)
    windows = [x[: rng.integers(5, 21)] for x in X_new]
    lengths = np.array([len(w) for w in windows], dtype=np.int32)
    padded = np.zeros_like(X_new)
    for k, w in enumerate(windows):
        padded[k, : len(w)] = w
    (got,) = session.run(None, {"X": padded, "sequence_lens": lengths})
    print(f"  {len(windows)} windows of 5-20 steps: max |onnx - predict| = "
          f"{np.abs(got - model.predict(windows)).max():.2g}")  # fmt: skip


if __name__ == "__main__":
    main()
