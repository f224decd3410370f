"""benchmarks/bench_suite.py: its FLOP accounting, candidate switching and table.

Nothing here times anything or starts a worker process.
"""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from conftest import require_torch

SUITE_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_suite.py"


@pytest.fixture(scope="module")
def suite():
    """The suite script, imported as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("bench_suite", SUITE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_suite"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_suite", None)


def test_executed_flops_skip_what_each_library_skips(suite):
    chargen = suite.WORKLOADS["chargen"]
    model = chargen.train_flops()
    x_product = chargen.input_product_flops()
    assert x_product == 2 * 64 * 100 * 4 * 256 * 64
    assert chargen.one_hot_inputs()
    # lstmlearn: no first-layer dx, and the one-hot input projection looked up.
    assert suite.executed_train_flops(chargen, "lstmlearn", {"n_jobs": 2}) == model - 2 * x_product
    # PyTorch: oneDNN's backward returns dx, the native LSTM's autograd skips it.
    assert suite.executed_train_flops(chargen, "pytorch", {"lstm": "onednn"}) == model
    assert suite.executed_train_flops(chargen, "pytorch", {"lstm": "native"}) == model - x_product
    for jit in (False, True):
        settings = {"jit_compile": jit}
        assert suite.executed_train_flops(chargen, "keras", settings) == model - x_product
    medium = suite.WORKLOADS["medium"]  # real-valued inputs: multiplied
    assert not medium.one_hot_inputs()
    assert (
        suite.executed_train_flops(medium, "lstmlearn", {})
        == medium.train_flops() - medium.input_product_flops()
    )


def test_summarize_counts_the_executed_flops(suite):
    tiny = suite.WORKLOADS["tiny"]
    raw = {"calls_per_repeat": 2, "repeat_seconds": [1.0, 3.0, 2.0], "flops_per_step": 5e9}
    out = suite.summarize(tiny, "train", raw)
    per_step = 1.0 / tiny.steps_per_call
    assert out["gflops"] == pytest.approx(5 / per_step)
    del raw["flops_per_step"]  # older raw timings: the model's count
    assert suite.summarize(tiny, "train", raw)["gflops"] == pytest.approx(
        tiny.train_flops() / per_step / 1e9
    )


def test_worker_state_prepares_builds_once_and_rewarms(suite):
    log = []

    def candidate(tag, switches):
        def build():
            log.append(("build", tag))
            return lambda: log.append(("call", tag))

        prepare = (lambda: log.append(("prepare", tag))) if switches else None
        return suite.Candidate(tag, {"tag": tag}, build, prepare)

    state = suite.WorkerState({"latency": [candidate("a", True), candidate("b", False)]})
    assert state.offers() == {"latency": [("a", {"tag": "a"}), ("b", {"tag": "b"})]}
    state.use("latency", "a", rewarm=True)
    assert log == [("prepare", "a"), ("build", "a")]  # first use: built, not called
    state.use("latency", "a", rewarm=True)
    assert len(log) == 2  # already active: nothing
    state.use("latency", "b", rewarm=True)
    assert log[2:] == [("build", "b")]
    log.clear()
    state.use("latency", "a", rewarm=True)  # back: switches set again, one untimed call
    assert log == [("prepare", "a"), ("call", "a")]
    log.clear()
    state.use("latency", "b", rewarm=True)  # no process-wide switches: no untimed call
    assert log == []
    with pytest.raises(KeyError):
        state.use("latency", "c", rewarm=True)


def test_table_names_the_configuration_of_every_cell(suite):
    figures = {
        "train": {"samples_per_second": 100.0, "gflops": 1.0, "config": "fused,native"},
        "infer": {"samples_per_second": 1000.0, "config": "onednn,threads=2"},
        "latency": {"milliseconds": 0.5, "config": "onednn,threads=1"},
    }
    ours = {
        "train": {"samples_per_second": 300.0, "gflops": 3.0, "config": "threads=2"},
        "infer": {"samples_per_second": 2000.0, "config": "threads=2"},
        "latency": {"milliseconds": 0.25, "config": "threads=1"},
    }
    entry = {"workload": "tiny", "libraries": {"lstmlearn": ours, "pytorch": figures}}
    lines = suite.table_lines([entry], ["lstmlearn", "pytorch"], sgemm=10.0)
    configs = [line for line in lines if line.strip().startswith("config ")]
    assert len(configs) == 3  # train, infer, latency; none under GFLOP/s
    assert configs[0].split()[1:] == ["threads=2", "fused,native"]
    assert configs[2].split()[1:] == ["threads=1", "onednn,threads=1"]
    train = next(line for line in lines if "train samples/s" in line)
    assert train.split()[-2:] == ["pytorch", "3.00"]


def test_thread_candidates_and_keras_processes(suite):
    assert suite.thread_counts(2) == [2, 1]
    assert suite.thread_counts(1) == [1]
    assert suite.process_variants("keras", 4) == [
        {"inter_op_threads": 1},
        {"inter_op_threads": 4},
    ]
    assert suite.process_variants("keras", 1) == [{"inter_op_threads": 1}]
    assert suite.process_variants("pytorch", 4) == [{}]


@pytest.mark.oracle
def test_native_pytorch_executes_what_the_suite_counts(suite):
    """PyTorch's native LSTM skips the input gradient (the input needs none), as counted.

    Its autograd also skips the product for the gradient of the zero initial
    state (one step's ``da W_hh`` per layer), which the count leaves in.
    """
    torch = require_torch()
    from torch.utils.flop_counter import FlopCounterMode

    workload = dataclasses.replace(
        suite.WORKLOADS["stacked"], batch=4, steps=6, hidden=16, steps_per_call=1
    )
    data = suite.make_data(workload, seed=0)
    model = suite._torch_model(workload, seed=0)
    x = torch.from_numpy(data.x_train[: workload.batch])
    y = torch.from_numpy(data.y_train[: workload.batch])
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        with FlopCounterMode(display=False) as counter:
            torch.nn.functional.mse_loss(model(x), y).backward()
    finally:
        torch.backends.mkldnn.enabled = enabled
    w = workload
    counted = suite.executed_train_flops(w, "pytorch", {"lstm": "native"})
    initial_state = w.layers * 2 * w.batch * 4 * w.hidden * w.hidden
    assert counter.get_total_flops() == counted - initial_state
