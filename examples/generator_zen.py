"""Character-level text generation on the Zen of Python with LSTMGenerator.

The model learns the next character of the text (the standard library's
``this`` module), then writes a continuation of a seed at temperature 0.5.
It prints the model's perplexity against the unigram baseline (how surprised
a model that only knows how often each character occurs would be) and the share
of generated words that are real words of the text.
"""

import time
from collections import Counter

import numpy as np

from lstmlearn import LSTMGenerator
from lstmlearn.datasets import zen_of_python


def unigram_perplexity(text: str) -> float:
    counts = Counter(text)
    p = np.array([counts[ch] / len(text) for ch in text[1:]])
    return float(np.exp(-np.log(p).mean()))


def words(text: str) -> list[str]:
    return [w.strip(".,!?-*'\"").lower() for w in text.split() if w.strip(".,!?-*'\"")]


def main() -> None:
    text = zen_of_python()
    model = LSTMGenerator(128, seq_length=40, step=1, max_iter=150, random_state=0)
    start = time.perf_counter()
    model.fit(text)
    seconds = time.perf_counter() - start
    seed = "Beautiful is "
    sample = model.generate(seed, length=400, temperature=0.5, random_state=0)
    known = set(words(text))
    generated = words(sample)
    real = sum(w in known for w in generated) / len(generated)
    print(f"trained {model.n_iter_} epochs on {len(text)} characters in {seconds:.1f} s")
    print(
        f"perplexity {model.perplexity(text):.2f} per character; "
        f"unigram baseline {unigram_perplexity(text):.2f}"
    )
    print(f"generated at temperature 0.5, {real:.0%} of {len(generated)} words are real words:")
    print(seed + sample)


if __name__ == "__main__":
    main()
