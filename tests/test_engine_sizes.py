"""Sizes the engine cannot index are refused with a ValueError.

The engine counts dimensions, and the elements of each tensor, in int. A
size of 2**31 or more used to reach pybind11 (its "incompatible constructor
arguments" dump), and a product of sizes computed in int wrapped (a conv
block's filters x pooled length, a huge hidden_size). Now every such size
gives a short ValueError naming the size and the engine's limit, before
anything is allocated. The cases run in a subprocess with a timeout and a
4 GiB address-space limit, so that a crash, a hang or a huge allocation fails
the test instead of the test run.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lstmlearn

# The folder holding the lstmlearn these tests import (installed, or the tree).
PYTHON_DIR = Path(lstmlearn.__file__).resolve().parents[1]
LIMIT = "2147483647"

NET = (
    "core.NetworkF32({input_size}, {hidden}, False, 'concat', 0.0, 0.0, {output_size}, False,"
    " 'squared_error', 1.0{extra})"
)


def net(input_size=4, hidden="[8]", output_size=1, extra=""):
    return NET.format(input_size=input_size, hidden=hidden, output_size=output_size, extra=extra)


# name -> (code raising the error, words its message must hold)
CASES = {
    "nn_input_size": ("LSTM(2**31, 4)", ["input_size", LIMIT]),
    "nn_hidden_size": ("LSTM(4, 2**31)", ["hidden_size", LIMIT]),
    "nn_hidden_size_per_dimension": ("LSTM(4, 2**30)", ["hidden_size", "per dimension", LIMIT]),
    "nn_parameter_count": ("LSTM(4, 2**20)", ["hidden_size 1048576", "weight_hh", LIMIT]),
    "nn_input_weights": ("LSTM(2**29, 4)", ["input_size", "weight_ih", LIMIT]),
    "nn_num_layers": ("LSTM(4, 4, num_layers=2**31)", ["num_layers", LIMIT]),
    "nn_huge_python_int": ("LSTM(4, 2**70)", ["hidden_size", LIMIT]),
    "raw_lstm": ("core.LSTMF32(4, 2**31, 1, False)", ["hidden_size", LIMIT]),
    "network_input_size": (net(input_size="2**31"), ["input_size", LIMIT]),
    "network_hidden": (net(hidden="[8, 2**31]"), ["hidden", LIMIT]),
    "network_hidden_tensor": (net(hidden="[2**20]"), ["layer 0", "hidden_size", LIMIT]),
    "network_output_size": (net(output_size="2**31"), ["output_size", LIMIT]),
    "network_dense_tensor": (net(output_size="2**30"), ["output_size", "dense.weight", LIMIT]),
    "network_attention_units": (
        net(extra=", pooling='attention', attention_units=2**31"),
        ["attention_units", LIMIT],
    ),
    "network_attention_tensor": (
        net(extra=", pooling='attention', attention_units=2**30"),
        ["attention_units", "pool.weight", LIMIT],
    ),
    "conv1d_filters": (
        net(
            input_size=64,
            extra=", front_end='conv1d', frame=[64, 1], conv_filters=2**31, kernel=[3]",
        ),
        ["conv_filters", LIMIT],
    ),
    "conv1d_frame": (
        net(
            input_size=64,
            extra=", front_end='conv1d', frame=[2**31, 1], conv_filters=4, kernel=[3]",
        ),
        ["frame", LIMIT],
    ),
    # Filters x pooled length: 2**16 x 2**15 = 2**31 wrapped in int.
    "conv1d_output_width": (
        net(
            input_size=2**15 + 2,
            extra=", front_end='conv1d', frame=[2**15 + 2, 1], conv_filters=2**16, kernel=[3]",
        ),
        ["conv1d", "output width", LIMIT],
    ),
    "conv2d_output_width": (
        net(
            input_size=258 * 258,
            extra=", front_end='conv2d', frame=[258, 258, 1], conv_filters=2**15, kernel=[3, 3]",
        ),
        ["conv2d", "output width", LIMIT],
    ),
    "conv1d_weight": (
        net(
            input_size=64,
            extra=", front_end='conv1d', frame=[64, 1], conv_filters=2**29, kernel=[8]",
        ),
        ["conv1d", "weight", LIMIT],
    ),
    "seq2seq_vocab": (
        "core.Seq2SeqF32(2**31, 1, 0, 1, 8, [8], 'repeat', 'none', 0)",
        ["input_vocab", LIMIT],
    ),
    "seq2seq_embedding": (
        "core.Seq2SeqF32(2**28, 1, 0, 1, 16, [8], 'repeat', 'none', 0)",
        ["input_vocab", "encoder.embedding", LIMIT],
    ),
    "seq2seq_output_vocab": (
        "core.Seq2SeqF32(0, 1, 2**31 - 1, 1, 8, [8], 'teacher_forcing', 'none', 0)",
        ["output_vocab", "decoder.embedding", LIMIT],
    ),
    "layer_repeats": (
        "core.repeat_forward(np.ones((1, 1), np.float32), 2**31)",
        ["repeats", LIMIT],
    ),
    "layer_num_embeddings": (
        "core.embedding_backward(np.ones((1, 1), np.float32), np.zeros(1, np.int32), 2**31)",
        ["num_embeddings", LIMIT],
    ),
    "layer_mean_pool_steps": (
        "core.mean_pool_backward(np.ones((1, 1), np.float32), 2**31)",
        ["steps", LIMIT],
    ),
    "layer_conv_pool": (
        "core.conv1d_forward(np.ones((1, 8, 1), np.float32), np.ones((1, 1, 3), np.float32),"
        " np.ones(1, np.float32), 2**31)",
        ["pool", LIMIT],
    ),
}

SCRIPT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
import numpy as np
from lstmlearn import _engine
from lstmlearn.nn import LSTM
core = _engine.core
out = {}
for name, code in json.loads(sys.argv[1]).items():
    try:
        eval(code)
        out[name] = ["no error", ""]
    except Exception as e:
        out[name] = [type(e).__name__, str(e)]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def outcomes():
    if sys.platform == "win32":
        pytest.skip("the address-space limit needs the resource module")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PYTHON_DIR), env.get("PYTHONPATH")) if p)
    codes = json.dumps({name: code for name, (code, _) in CASES.items()})
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), codes],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", list(CASES))
def test_huge_sizes_raise_a_short_value_error(outcomes, name):
    kind, message = outcomes[name]
    assert kind == "ValueError", (kind, message)
    assert "incompatible" not in message and "\n" not in message, message
    for words in CASES[name][1]:
        assert words in message, (words, message)


def test_sizes_within_the_limits_still_work():
    import numpy as np

    from lstmlearn import _engine
    from lstmlearn.nn import LSTM

    lstm = LSTM(np.int64(3), np.int32(4))  # NumPy integers are sizes too
    assert lstm.forward(np.zeros((1, 2, 3)))[0].shape == (1, 2, 4)
    net = _engine.core.NetworkF32(
        4, [np.int64(8)], False, "concat", 0.0, 0.0, 1, False, "squared_error", 1.0
    )
    assert net.parameter_count > 0
