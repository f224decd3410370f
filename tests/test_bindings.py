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
