"""Execution settings and chunking, on CPU, with out-of-memory errors simulated by a fake fn."""

import os

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from dmoe.cosim.execution import (ExecutionSettings, compile_function, configure_device,
                                  execution_scope, resolve_device, run_chunked)


def _oom():
    return tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor (fake)")


class _MemoryLimited:
    """A row-wise function that runs out of memory on chunks longer than ``limit``."""

    def __init__(self, limit, error=_oom):
        self.limit, self.error, self.calls = limit, error, []

    def __call__(self, chunk):
        self.calls.append(len(chunk))
        if len(chunk) > self.limit:
            raise self.error()
        return np.sin(chunk) * 3.0


def _expected_size(start, limit, length, floor=1):
    """Brute force: the first of start, start // 2, ... that fits (not above the batch)."""
    size = max(min(start, length), floor)
    while size > limit:
        size = max(size // 2, floor)
    return size


@settings(max_examples=40)
@given(length=st.integers(1, 300), start=st.integers(1, 512), limit=st.integers(1, 300))
def test_chunked_output_equals_whole_batch_and_the_size_is_the_first_halving_that_fits(
        length, start, limit):
    batch = np.linspace(-3.0, 3.0, length)
    function = _MemoryLimited(limit)
    result = run_chunked(function, batch, chunk_size=start)
    np.testing.assert_array_equal(result.output, np.sin(batch) * 3.0)
    expected = _expected_size(start, limit, length)
    assert result.chunk_size == expected
    assert result.num_chunks == -(-length // expected)
    # Every call that succeeded had at most `expected` rows; each halving was one failure.
    failed = [n for n in function.calls if n > limit]
    assert len(failed) == result.halvings
    assert sum(n for n in function.calls if n <= limit) == length


def test_memory_error_is_handled_like_resource_exhausted():
    function = _MemoryLimited(5, error=MemoryError)
    result = run_chunked(function, np.arange(16.0), chunk_size=16)
    assert (result.chunk_size, result.halvings, result.num_chunks) == (4, 2, 4)
    np.testing.assert_array_equal(result.output, np.sin(np.arange(16.0)) * 3.0)


def test_out_of_memory_at_the_smallest_chunk_is_raised():
    with pytest.raises(tf.errors.ResourceExhaustedError):
        run_chunked(_MemoryLimited(0), np.arange(8.0), chunk_size=8)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        run_chunked(_MemoryLimited(3), np.arange(8.0), chunk_size=8, min_chunk_size=4)


@settings(max_examples=30)
@given(length=st.integers(1, 200), start=st.integers(1, 256), limit=st.integers(1, 200))
def test_restart_runs_every_chunk_at_the_recorded_size(length, start, limit):
    batch = np.linspace(-2.0, 2.0, length)
    function = _MemoryLimited(limit)
    result = run_chunked(function, batch, chunk_size=start, restart=True,
                         combine=lambda parts: [len(part) for part in parts])
    expected = _expected_size(start, limit, length)
    assert result.chunk_size == expected
    # After the last failure the batch ran from the start, in chunks of exactly that size.
    after = function.calls[len(function.calls) - result.num_chunks:]
    assert result.output == after
    assert sum(after) == length and all(n == expected for n in after[:-1])
    assert len(function.calls) == result.halvings + result.num_chunks + sum(
        1 for n in function.calls[:len(function.calls) - result.num_chunks] if n <= limit)


def test_combine_must_be_callable():
    with pytest.raises(ValueError, match="combine"):
        run_chunked(np.sin, np.arange(4.0), combine="sum")


def test_other_errors_are_not_retried():
    calls = []

    def broken(chunk):
        calls.append(len(chunk))
        raise ValueError("a bug, not memory")
    with pytest.raises(ValueError, match="a bug"):
        run_chunked(broken, np.arange(8.0), chunk_size=8)
    assert calls == [8]


def test_structured_batches_and_tensor_outputs():
    batch = {"snr": np.arange(10.0), "bits": np.arange(20).reshape(10, 2)}

    def function(chunk):
        if len(chunk["snr"]) > 3:
            raise _oom()
        return (tf.constant(chunk["snr"] * 2), {"sum": chunk["bits"].sum(axis=1)})
    result = run_chunked(function, batch)
    doubled, sums = result.output
    assert isinstance(doubled, tf.Tensor)
    np.testing.assert_array_equal(doubled.numpy(), np.arange(10.0) * 2)
    np.testing.assert_array_equal(sums["sum"], np.arange(20).reshape(10, 2).sum(axis=1))
    assert result.chunk_size == 2  # 10 -> 5 -> 2
    with pytest.raises(ValueError, match="same first"):
        run_chunked(function, {"a": np.zeros(3), "b": np.zeros(4)})


@pytest.mark.parametrize("kwargs, word", [
    ({"mode": "jit"}, "mode"), ({"precision": "half"}, "precision"),
    ({"chunk_size": 0}, "chunk_size"), ({"chunk_size": 2.5}, "chunk_size"),
    ({"device": ""}, "device")])
def test_settings_reject_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ExecutionSettings(**kwargs)


def test_run_chunked_rejects_bad_sizes():
    with pytest.raises(ValueError, match="chunk_size"):
        run_chunked(np.sin, np.arange(4.0), chunk_size=0)
    with pytest.raises(ValueError, match="min_chunk_size"):
        run_chunked(np.sin, np.arange(4.0), min_chunk_size=0)
    with pytest.raises(ValueError, match="at least one"):
        run_chunked(np.sin, np.zeros(0))


def test_settings_record_and_dtypes():
    xla = ExecutionSettings(mode="xla", precision="double", chunk_size=256)
    assert xla.jit_compile and not xla.run_eagerly
    assert (xla.float_dtype, xla.complex_dtype) == ("float64", "complex128")
    assert xla.record(device="/device:CPU:0", chunk_size_used=128) == {
        "execution_mode": "xla", "precision": "double", "device": "/device:CPU:0",
        "chunk_size": 128}
    assert ExecutionSettings(mode="eager").run_eagerly


def test_every_mode_computes_the_same_values():
    def function(x):
        return tf.reduce_sum(tf.square(x), axis=-1) + tf.math.log1p(tf.abs(x[:, 0]))
    x = tf.constant(np.random.default_rng(3).normal(size=(64, 8)), tf.float32)
    reference = np.sum(x.numpy() ** 2, axis=-1) + np.log1p(np.abs(x.numpy()[:, 0]))
    for mode in ("eager", "graph", "xla"):
        compiled = compile_function(function, ExecutionSettings(mode=mode))
        assert hasattr(compiled, "get_concrete_function") == (mode != "eager")
        np.testing.assert_allclose(compiled(x).numpy(), reference, rtol=1e-5)


def test_execution_scope_sets_and_restores_eager_mode_and_device():
    before = tf.config.functions_run_eagerly()
    with execution_scope(ExecutionSettings(mode="eager", device="/CPU:0")):
        assert tf.config.functions_run_eagerly()
        assert "CPU:0" in tf.constant(1.0).device
    assert tf.config.functions_run_eagerly() == before


def test_configure_device_resolves_what_exists():
    assert configure_device(ExecutionSettings()) == resolve_device(None)
    assert resolve_device("/CPU:0") == "/device:CPU:0"
    if not tf.config.list_logical_devices("GPU"):
        assert resolve_device(None) == "/device:CPU:0"
    with pytest.raises(ValueError, match="device '/GPU:97' is not available"):
        resolve_device("/GPU:97")


def test_the_study_file_accepts_the_modes_and_precisions_of_the_vocabulary():
    # phy, moe and cosim check modes with dmoe.common; the study file lists the same names.
    import typing
    from dmoe.common import EXECUTION_MODES, PRECISIONS
    from dmoe.cosim.config import ExecutionSection
    fields = ExecutionSection.model_fields
    assert typing.get_args(fields["mode"].annotation) == EXECUTION_MODES
    assert typing.get_args(fields["precision"].annotation) == PRECISIONS


def test_memory_growth_is_asked_for_before_tensorflow_starts_unless_the_user_said_no(
        monkeypatch):
    from dmoe.cosim.cli import main
    from dmoe.cosim.execution import enable_memory_growth
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    assert main([]) == 2  # no command: help only, but the environment is set first
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH")
    assert enable_memory_growth() == len(tf.config.list_physical_devices("GPU"))
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "false")
    enable_memory_growth()
    main([])
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "false"
