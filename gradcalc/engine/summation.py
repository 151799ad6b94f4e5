"""Sums in the order PyTorch's CPU kernels add, so that they round as torch's do.

torch sums a contiguous tensor with a cascade (SumKernel.cpp): a scalar tail, vector lanes,
four interleaved accumulators, and levels that fold every `level_step` blocks upwards; past
the grain size the range is split between threads and the partial sums are added in order.
NumPy's pairwise sum differs in the last bits, and wholly under cancellation:
[1, 1e20, 0, -1e20, 0.5] sums to 0. in torch and 0.5 in NumPy.
"""

from __future__ import annotations

import os

import numpy as np

ILP = 4
LEVELS = 4
GRAIN = 32768
# Lanes of a vector register in torch's kernels on x86-64 (AVX2 width), by element size.
LANES = {4: 8, 8: 4}


def torch_threads() -> int:
    """torch's intra-op thread count: OMP_NUM_THREADS, else the CPUs this process may use."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def torch_sum(x: np.ndarray) -> np.ndarray:
    """The sum of all elements, as a 0-d array in x's dtype, added in torch's order."""
    flat = np.ascontiguousarray(x).reshape(-1)
    dtype = flat.dtype
    threads = torch_threads()
    if flat.size <= GRAIN or threads == 1:
        return np.asarray(_cascade(flat), dtype=dtype)
    chunk = -(-flat.size // threads)
    total = dtype.type(0)
    for start in range(0, flat.size, chunk):
        total = total + _cascade(flat[start:start + chunk])
    return np.asarray(total, dtype=dtype)


def row_sums(values: np.ndarray) -> np.ndarray:
    """Each column of `values` (shape (size, width)) summed as torch's `row_sum` adds a strided
    row: four interleaved accumulators (rows i % 4), each a cascade, then added 0 + 1 + 2 + 3."""
    return _row_sum(values)


def multi_row_sums(rows: np.ndarray) -> np.ndarray:
    """Each column of `rows` (shape (size, width)) summed as torch's `multi_row_sum` adds it: one
    cascade, whose levels fold every `level_step` blocks of rows upwards."""
    return _multi_row_sum(rows)


def _cascade(x: np.ndarray):
    lanes = LANES.get(x.dtype.itemsize, 1)
    if x.size < lanes:
        return _row_sum(x.reshape(-1, 1))[0]
    vectors = x.size // lanes
    vector_sum = _row_sum(x[: vectors * lanes].reshape(vectors, lanes))
    total = x.dtype.type(0)
    for value in x[vectors * lanes:]:
        total = total + value
    for value in vector_sum:
        total = total + value
    return total


def _row_sum(values: np.ndarray) -> np.ndarray:
    """Four interleaved accumulators over rows of `values` (shape (size, lanes))."""
    size, lanes = values.shape
    rows = size // ILP
    partial = _multi_row_sum(values[: rows * ILP].reshape(rows, ILP * lanes)).reshape(ILP, lanes)
    first = partial[0]
    for row in values[rows * ILP:]:
        first = first + row
    for k in range(1, ILP):
        first = first + partial[k]
    return first


def _multi_row_sum(rows: np.ndarray) -> np.ndarray:
    size, width = rows.shape
    power = max(4, _ceil_log2(size) // LEVELS)
    step = 1 << power
    mask = step - 1
    blocks = size // step
    zero = np.zeros(width, dtype=rows.dtype)
    # Each block is added row by row from zero, all blocks at once.
    block_sums = np.zeros((blocks, width), dtype=rows.dtype)
    stacked = rows[: blocks * step].reshape(blocks, step, width)
    for j in range(step):
        block_sums = block_sums + stacked[:, j]
    acc = [zero] * LEVELS
    done = 0
    for block in block_sums:
        done += step
        acc[1] = acc[1] + block
        for level in range(1, LEVELS):
            if level > 1:
                acc[level] = acc[level] + acc[level - 1]
                acc[level - 1] = zero
            if done & (mask << (level * power)):
                break
    for row in rows[blocks * step:]:
        acc[0] = acc[0] + row
    for level in range(1, LEVELS):
        acc[0] = acc[0] + acc[level]
    return acc[0]


def _ceil_log2(n: int) -> int:
    return 0 if n <= 1 else (n - 1).bit_length()
