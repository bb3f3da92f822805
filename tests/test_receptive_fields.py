"""Receptive fields: known answers on tiny literal matrices, validation."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.receptive_fields import field_images, receptive_fields

W1 = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # 3 visible, 2 units
W2 = np.array([[1.0, 0.0], [1.0, -1.0]])  # 2 -> 2
W3 = np.array([[2.0], [1.0]])  # 2 -> 1
WEIGHTS = [W1, W2, W3]


def test_layer_1_is_w1_transposed():
    out = receptive_fields(WEIGHTS, 1)
    np.testing.assert_array_equal(out, [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]])
    assert out.dtype == np.float64 and out.flags.c_contiguous


def test_layer_2_is_w1_w2_transposed():
    # W1 @ W2 = [[3, -2], [7, -4], [11, -6]]
    np.testing.assert_array_equal(receptive_fields(WEIGHTS, 2), [[3.0, 7.0, 11.0], [-2.0, -4.0, -6.0]])


def test_layer_3_is_w1_w2_w3_transposed():
    # W1 @ W2 @ W3 = [[4], [10], [16]]
    np.testing.assert_array_equal(receptive_fields(WEIGHTS, 3), [[4.0, 10.0, 16.0]])


def test_integer_and_float32_inputs_give_float64():
    out = receptive_fields([W1.astype(np.int32), W2.astype(np.float32)], 2)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[3.0, 7.0, 11.0], [-2.0, -4.0, -6.0]])


def test_numpy_integer_layer_accepted():
    np.testing.assert_array_equal(receptive_fields(WEIGHTS, np.int64(1)), W1.T)


def test_inputs_not_modified():
    w1 = W1.copy()
    receptive_fields([w1, W2], 2)
    np.testing.assert_array_equal(w1, W1)


@pytest.mark.parametrize("layer", [0, 4, -1, True, 1.0, "1"])
def test_layer_out_of_range_raises(layer):
    with pytest.raises(ValueError, match=r"layer.*allowed: an integer in \[1, 3\].*analysis.cluster_layers"):
        receptive_fields(WEIGHTS, layer)


def test_empty_weights_raise():
    with pytest.raises(ValueError, match="weights"):
        receptive_fields([], 1)


def test_shapes_that_do_not_chain_raise():
    with pytest.raises(ValueError, match=r"weights\[1\].*chain"):
        receptive_fields([W1, np.ones((3, 2))], 2)


def test_non_finite_or_not_2d_raise():
    with pytest.raises(ValueError, match=r"weights\[0\].*finite"):
        receptive_fields([np.array([[np.nan, 1.0]])], 1)
    with pytest.raises(ValueError, match=r"weights\[0\].*2-d"):
        receptive_fields([np.ones(3)], 1)


def test_only_the_needed_matrices_are_read():
    np.testing.assert_array_equal(receptive_fields([W1, np.full((7, 7), np.nan)], 1), W1.T)


def test_field_images_reshape_row_major():
    fields = np.arange(12.0).reshape(2, 6)
    images = field_images(fields, (2, 3))
    assert images.shape == (2, 2, 3) and images.dtype == np.float64
    np.testing.assert_array_equal(images[1], [[6.0, 7.0, 8.0], [9.0, 10.0, 11.0]])
    images[0, 0, 0] = 99.0
    assert fields[0, 0] == 0.0  # a copy


def test_field_images_default_mnist_shape():
    assert field_images(np.zeros((3, 784))).shape == (3, 28, 28)


def test_field_images_validation():
    with pytest.raises(ValueError, match="pixels per field"):
        field_images(np.zeros((2, 5)), (2, 3))
    with pytest.raises(ValueError, match="fields.*2-d"):
        field_images(np.zeros(6), (2, 3))
    with pytest.raises(ValueError, match="shape"):
        field_images(np.zeros((2, 6)), (0, 6))
    with pytest.raises(ValueError, match="shape"):
        field_images(np.zeros((2, 6)), (2.0, 3.0))
