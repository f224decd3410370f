"""The raw bindings (lstmlearn._core_*): layout, buffer views, preconditions."""

import numpy as np
import pytest

from lstmlearn import _engine

core = _engine.core


def test_layout_is_pytorch_order_and_contiguous():
    raw = core.LSTMF32(3, 4, 2, True)
    layout = raw.layout()
    names = [name for name, _, _ in layout]
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert names[4] == "weight_ih_l0_reverse" and names[-1] == "bias_hh_l1_reverse"
    offset = 0
    for name, at, shape in layout:
        assert at == offset, name
        offset += int(np.prod(shape))
    assert offset == raw.parameters.size == raw.gradients.size
    assert dict((n, s) for n, _, s in layout)["weight_ih_l1"] == (16, 8)


def test_parameters_is_a_writable_view():
    raw = core.LSTMF64(1, 1, 1, False)
    raw.parameters[:] = 2.0
    assert np.all(raw.parameters == 2.0)
    view = raw.parameters
    del raw  # the view keeps the buffer alive
    assert np.all(view == 2.0)


def test_sizes_must_be_positive():
    with pytest.raises(ValueError, match="hidden_size=0"):
        core.LSTMF32(3, 0, 1, False)


def test_wrong_buffer_size_is_refused():
    raw = core.LSTMF32(2, 3, 1, False)
    x = np.zeros((4, 5, 2), np.float32)
    z = np.zeros((1, 4, 3), np.float32)
    y = np.empty((4, 5, 3), np.float32)
    with pytest.raises(ValueError, match="h0 has 6 elements, expected 12"):
        raw.forward(x, z[:, :2], z, None, None, y, z.copy(), z.copy(), 1)


def test_wrong_dtype_is_refused_not_converted():
    raw = core.LSTMF32(2, 3, 1, False)
    z = np.zeros((1, 4, 3), np.float32)
    y = np.empty((4, 5, 3), np.float32)
    with pytest.raises(TypeError):
        raw.forward(np.zeros((4, 5, 2)), z, z, None, None, y, z.copy(), z.copy(), 1)


def test_backward_before_forward():
    raw = core.LSTMF32(2, 3, 1, False)
    z = np.zeros((1, 1, 3), np.float32)
    with pytest.raises(RuntimeError, match="before forward"):
        raw.backward(
            np.zeros((1, 1, 3), np.float32), None, None, np.zeros((1, 1, 2), np.float32), z, z, 1
        )


def test_gradients_is_a_copy_and_dparams_receives_them():
    raw = core.LSTMF64(2, 3, 1, False)
    raw.parameters[:] = np.random.default_rng(0).uniform(-0.5, 0.5, raw.parameters.size)
    x = np.random.default_rng(1).normal(size=(4, 5, 2))
    z = np.zeros((1, 4, 3))
    y = np.empty((4, 5, 3))
    raw.forward(x, z, z, None, None, y, z.copy(), z.copy(), 1)
    dparams = np.empty(raw.parameters.size)
    raw.backward(np.ones_like(y), None, None, np.empty_like(x), z.copy(), z.copy(), 1, dparams)
    before = raw.gradients
    np.testing.assert_array_equal(before, dparams)
    raw.forward(2 * x, z, z, None, None, y, z.copy(), z.copy(), 1)
    raw.backward(np.ones_like(y), None, None, np.empty_like(x), z.copy(), z.copy(), 1)
    np.testing.assert_array_equal(before, dparams)  # a copy: the next backward left it alone
    assert not np.array_equal(raw.gradients, before)
    with pytest.raises(ValueError, match="dparams"):
        raw.backward(
            np.ones_like(y),
            None,
            None,
            np.empty_like(x),
            z.copy(),
            z.copy(),
            1,
            np.empty(raw.parameters.size, np.float32),
        )


# -- packed weights reused across predict calls: params_version ---------------


def network():
    return core.NetworkF32(3, [16, 8], False, "concat", 0.0, 0.0, 2, False, "squared_error", 1.0)


def predict(net, params, X, **version):
    out = np.empty((len(X), 2), np.float32)
    net.predict(params, X, None, out, 256, 1, **version)
    return out


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    net = network()
    params = rng.uniform(-0.5, 0.5, net.parameter_count).astype(np.float32)
    X = rng.normal(size=(5, 7, 3)).astype(np.float32)
    # Other values for the weights only: the biases are read on every call,
    # so a stale pack shows as the old result exactly.
    other = params.copy()
    for name, offset, shape in net.layout():
        if "weight" in name:
            size = int(np.prod(shape))
            other[offset : offset + size] = rng.uniform(-0.5, 0.5, size)
    return net, params, other, X


@pytest.mark.parametrize("second", [{}, {"params_version": 0}, {"params_version": 6}])
def test_other_values_at_the_same_address_are_not_served_stale(setup, second):
    # A new array may be allocated where a freed one was: the address alone
    # must not make the engine reuse the weights it packed for the old one.
    net, params, other, X = setup
    first = predict(net, params, X, params_version=5)
    params[...] = other  # other values, same address, no params_changed()
    got = predict(net, params, X, **second)
    assert not np.array_equal(got, first)
    np.testing.assert_array_equal(got, predict(network(), other, X))


def test_the_same_version_reuses_the_packed_weights(setup):
    net, params, other, X = setup
    first = predict(net, params, X, params_version=5)
    np.testing.assert_array_equal(predict(net, params, X, params_version=5), first)
    # Proof of the reuse: a promise broken on purpose (other weights under
    # the same version) still gives the packed weights' result.
    params[...] = other
    np.testing.assert_array_equal(predict(net, params, X, params_version=5), first)
    net.params_changed()  # the generation check still applies
    np.testing.assert_array_equal(
        predict(net, params, X, params_version=5), predict(network(), other, X)
    )


def _stream_network(dtype=np.float64, **kwargs):
    name = "NetworkF64" if dtype == np.float64 else "NetworkF32"
    args = {"bidirectional": False, "pooling": "last", **kwargs}
    per_step = args["pooling"] == "last"
    net = getattr(core, name)(
        2, [5, 3], args["bidirectional"], "concat", 0.0, 0.0, 2, per_step, "squared_error", 1.0,
        pooling=args["pooling"],
    )  # fmt: skip
    params = np.random.default_rng(0).uniform(-0.5, 0.5, net.parameter_count).astype(dtype)
    return net, params


def test_stream_binding_state_per_stream():
    net, params = _stream_network()
    stream = net.stream(params, 2)
    assert stream.n_streams == 2
    x = np.random.default_rng(1).normal(size=(4, 2, 2))
    first = [stream.step(np.ascontiguousarray(x[t]), 1) for t in range(4)]
    assert first[0].dtype == np.float64 and first[0].shape == (2, 2)
    # resize keeps stream 0's state; the new stream 1 starts from zero.
    stream.reset(-1)
    stream.step(np.ascontiguousarray(x[0]), 1)
    stream.resize(1)
    stream.resize(2)
    again = stream.step(np.ascontiguousarray(np.stack([x[1, 0], x[0, 1]])), 1)
    np.testing.assert_array_equal(again[0], first[1][0])
    np.testing.assert_array_equal(again[1], first[0][1])
    # The stream copied the parameters: changing them later changes nothing.
    params[:] = 0
    stream.reset(-1)
    np.testing.assert_array_equal(stream.step(np.ascontiguousarray(x[0]), 1), first[0])


def test_stream_binding_preconditions():
    net, params = _stream_network()
    stream = net.stream(params, 2)
    with pytest.raises(ValueError, match="x has 2 elements, expected 4"):
        stream.step(np.zeros(2), 1)
    with pytest.raises(IndexError):
        stream.reset(2)
    with pytest.raises(ValueError, match="positive"):
        stream.resize(0)
    with pytest.raises(ValueError, match="params"):
        net.stream(params[:-1], 1)
    for kwargs, message in (
        ({"bidirectional": True}, "reverse direction"),
        ({"pooling": "mean"}, "every step"),
    ):
        other, p = _stream_network(**kwargs)
        with pytest.raises(ValueError, match=message):
            other.stream(p, 1)
