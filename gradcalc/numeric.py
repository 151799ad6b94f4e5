"""Evaluate the expression trees of `derive` with NumPy, in the tensors' dtype."""

from __future__ import annotations

import math

import numpy as np

_CMP = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
        ">": np.greater, ">=": np.greater_equal}

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _call(name: str, *xs):
    if name == "erf":
        (x,) = xs
        return _erf(x).astype(np.result_type(x))
    return getattr(np, name)(*xs)


def evaluate(tree: tuple, g, args: list, dtype):
    """The value of `tree` with ("g",) bound to `g` and ("arg", i) to `args[i]`."""
    tag = tree[0]
    if tag == "g":
        return g
    if tag == "arg":
        return args[tree[1]]
    if tag == "num":
        return np.asarray(tree[1], dtype=dtype)
    if tag == "true":
        return np.asarray(True)
    if tag == "add":
        total = evaluate(tree[1][0], g, args, dtype)
        for t in tree[1][1:]:
            total = total + evaluate(t, g, args, dtype)
        return total
    if tag == "mul":
        product = evaluate(tree[1][0], g, args, dtype)
        for t in tree[1][1:]:
            product = product * evaluate(t, g, args, dtype)
        return product
    if tag == "div":
        return evaluate(tree[1], g, args, dtype) / evaluate(tree[2], g, args, dtype)
    if tag == "pow":
        return np.power(evaluate(tree[1], g, args, dtype), evaluate(tree[2], g, args, dtype))
    if tag == "call":
        return _call(tree[1], *(evaluate(t, g, args, dtype) for t in tree[2]))
    if tag == "cmp":
        return _CMP[tree[1]](evaluate(tree[2], g, args, dtype), evaluate(tree[3], g, args, dtype))
    if tag == "and":
        return np.logical_and.reduce([evaluate(t, g, args, dtype) for t in tree[1]])
    if tag == "or":
        return np.logical_or.reduce([evaluate(t, g, args, dtype) for t in tree[1]])
    if tag == "not":
        return np.logical_not(evaluate(tree[1][0], g, args, dtype))
    if tag == "where":
        return _where(tree[1], g, args, dtype)
    raise ValueError(f"unknown expression tree node {tag!r}")


def _where(branches, g, args, dtype):
    """Piecewise: the first branch whose condition holds; a zero branch is a true zero."""
    conds = [evaluate(c, g, args, dtype) for c, _ in branches]
    values = [evaluate(v, g, args, dtype) for _, v in branches]
    shape = np.broadcast_shapes(*(np.shape(x) for x in conds + values + [g]))
    result = np.broadcast_to(values[-1], shape).astype(dtype, copy=True)
    for cond, value in zip(reversed(conds[:-1]), reversed(values[:-1])):
        result = np.where(cond, value, result)
    return result.astype(dtype, copy=False)
