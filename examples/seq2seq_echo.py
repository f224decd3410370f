"""Echo random integer sequences with an encoder-decoder (LSTMSeq2Seq).

Sequences of 5 to 8 tokens from a vocabulary of 10 go in; the model must write
the same sequence back and stop. Prints the exact-match accuracy on held-out
sequences (every token and the length right) and how long training took.

Run: python examples/seq2seq_echo.py [--seed N]
"""

import argparse
import time

import lstmlearn
from lstmlearn import LSTMSeq2Seq
from lstmlearn.datasets import make_echo_sequences

N_TRAIN, N_TEST = 2000, 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    seed = parser.parse_args().seed
    X, y = make_echo_sequences(N_TRAIN + N_TEST, 5, 8, vocab_size=10, random_state=seed)
    model = LSTMSeq2Seq(
        hidden_layer_sizes=32,
        attention="additive",
        embedding_dim=16,
        learning_rate=0.02,
        max_iter=40,
        tol=1e-3,
        n_iter_no_change=2,
        random_state=seed,
    )
    start = time.perf_counter()
    model.fit(X[:N_TRAIN], y[:N_TRAIN])
    seconds = time.perf_counter() - start

    accuracy = model.score(X[N_TRAIN:], y[N_TRAIN:])
    print(f"lstmlearn {lstmlearn.__version__}: LSTMSeq2Seq echoing {N_TRAIN} random sequences")
    print(f"  seed: {seed}, epochs: {model.n_iter_}, training time: {seconds:.1f} s")
    print(f"  held-out exact-match accuracy: {accuracy:.3f} ({N_TEST} sequences)")
    print(
        f"  example: {X[N_TRAIN].tolist()} -> {model.predict(X[N_TRAIN : N_TRAIN + 1])[0].tolist()}"
    )


if __name__ == "__main__":
    main()
