"""Add two numbers written as characters, "17+25" -> "42", with LSTMSeq2Seq.

Questions and answers are character tokens ('0'-'9' and '+'); answers have 1
to 3 digits, so the model learns where an answer ends. Training and held-out
pairs are distinct. Prints the held-out exact-match accuracy and a few sums.

Run: python examples/seq2seq_addition.py [--seed N]
"""

import argparse
import time

import lstmlearn
from lstmlearn import LSTMSeq2Seq
from lstmlearn.datasets import ADDITION_ALPHABET, make_addition_strings

N_TRAIN, N_TEST = 5000, 1000


def text(tokens) -> str:
    return "".join(ADDITION_ALPHABET[t] for t in tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    seed = parser.parse_args().seed
    X, y = make_addition_strings(N_TRAIN + N_TEST, max_value=99, random_state=seed)
    model = LSTMSeq2Seq(
        hidden_layer_sizes=64,
        attention="additive",
        embedding_dim=16,
        learning_rate=0.005,
        max_iter=60,
        n_iter_no_change=5,
        random_state=seed,
    )
    start = time.perf_counter()
    model.fit(X[:N_TRAIN], y[:N_TRAIN])
    seconds = time.perf_counter() - start

    X_test, y_test = X[N_TRAIN:], y[N_TRAIN:]
    accuracy = model.score(X_test, y_test)
    print(f"lstmlearn {lstmlearn.__version__}: LSTMSeq2Seq adding {N_TRAIN} pairs of numbers")
    print(f"  seed: {seed}, epochs: {model.n_iter_}, training time: {seconds:.1f} s")
    print(f"  held-out exact-match accuracy: {accuracy:.3f} ({N_TEST} unseen pairs)")
    for question, answer in zip(X_test[:5], model.predict(X_test[:5]), strict=True):
        print(f"  {text(question):>5} = {text(answer)}")


if __name__ == "__main__":
    main()
