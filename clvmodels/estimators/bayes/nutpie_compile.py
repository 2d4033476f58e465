"""Compile a PyMC model for nutpie with C entry points that are quick to compile and cached on disk.

``nutpie.compile_pymc_model(model, backend="numba")`` turns the model's log-density-and-gradient
function (and the function computing the stored variables) into numba ``cfunc`` entry points
that nuts-rs calls. Its entry points copy results with whole-array numpy expressions
(``out[...] = grad``, ``np.all(np.isfinite(out))``) that numba needs ~3.5 s to type and lower,
and they are compiled afresh in every process (measured in a fresh process: 3.7 s for a 3-line
function using them, 0.8 s for the same with explicit loops). For a small model that is most
of the fit: the 4 x 1000-draw CDNOW fit samples in ~1 s.

:func:`compile_for_nutpie` builds the same entry points (same C signatures and return codes:
0 ok; -1 wrong dimension; 1 / -2 an exception; 3 a non-finite gradient; 4 a non-finite log
density) with explicit loops, and, when pytensor could cache the compiled model function on
disk (every Op of the graph has a cache key), caches the entry points next to it under a key
derived from pytensor's: a later process fitting a model of the same structure and data loads
them instead of compiling. The log-density entry point catches exceptions only for models whose
compiled function can raise (:func:`may_raise`): numba takes ~1.8 s to compile the guard.
Everything else is nutpie's own compilation. This relies on two
private hooks of nutpie's ``compile_pymc`` module (``_make_c_logp_func``,
``_make_c_expand_func``), checked for at call time and exercised by every nutpie fit in the
tests; models with shared variables, or a nutpie without those hooks, take nutpie's own
entry points (slower to compile, same results).
"""

from __future__ import annotations

import threading
from typing import Any

_HOOKS = ("_make_c_logp_func", "_make_c_expand_func")
_LOCK = threading.Lock()

_LOGP_BODY = """
    x = numba.carray(x_ptr, (n_dim,))
    grad_out = numba.carray(grad_ptr, (n_dim,))
    logp_out = numba.carray(logp_ptr, (1,))
    logp_array, grad = model_fn(x)
    logp = logp_array[()]
    logp_out[0] = logp
    finite = True
    for i in range(n_dim):
        grad_out[i] = grad[i]
        finite = finite and math.isfinite(grad[i])
    if not finite:
        return 3
    if not math.isfinite(logp):
        return 4
    return 0
"""
_LOGP_HEAD = """
def logp_entry(dim, x_ptr, grad_ptr, logp_ptr, user_data_ptr):
    if dim != n_dim:
        return -1
"""
# a model function that can raise (parameter checks) needs the guarded form: an exception
# escaping a cfunc is only printed, and the caller would read "0: ok". The guard costs ~1.8 s of
# numba compilation in a fresh process, so models without checks go without it.
_LOGP_SOURCE_GUARDED = (
    _LOGP_HEAD
    + "    try:\n"
    + "".join(f"    {line}\n" for line in _LOGP_BODY.strip("\n").splitlines())
    + "    except Exception:\n        return 1\n"
)
_LOGP_SOURCE_PLAIN = _LOGP_HEAD + _LOGP_BODY

_EXPAND_SOURCE = """
def expand_entry(dim, expanded, x_ptr, out_ptr, user_data_ptr):
    if dim != n_dim or expanded != n_expanded:
        return -1
    try:
        x = numba.carray(x_ptr, (n_dim,))
        out = numba.carray(out_ptr, (n_expanded,))
        (values,) = model_fn(x)
        for i in range(n_expanded):
            out[i] = values[i]
    except Exception:
        return -2
    return 0
"""


def _signature(*pointer_args: str):
    import numba

    kinds = {"n": numba.types.uint64, "p": numba.types.CPointer(numba.types.double)}
    return numba.types.int64(*(kinds[k] for k in pointer_args), numba.types.voidptr)


class _NotCacheable(Exception):
    """Raised inside a hook when the entry points cannot be cached (compile again without)."""


def _entry_function(source: str, name: str, model_fn, constants: dict[str, int], cache: bool):
    """The python function ``name`` defined by ``source``, calling ``model_fn``; registered
    for pytensor's numba cache locator under a key extending pytensor's key of ``model_fn``
    when ``cache`` (:class:`_NotCacheable` if pytensor did not cache ``model_fn``)."""
    import hashlib
    import math

    import numba
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    key = None
    if cache:
        model_key = CACHED_SRC_FUNCTIONS.get(getattr(model_fn, "py_func", None))
        if model_key is None:
            raise _NotCacheable(name)
        settings = ",".join(f"{k}={v}" for k, v in sorted(constants.items()))
        # the source enters the key: an edited entry point never meets a stale cache entry;
        # and so does this module's name, from which numba rebuilds a cached function's
        # environment: a moved module never loads entries that name the old one
        source_hash = hashlib.sha256(f"{__name__}\n{source}".encode()).hexdigest()[:16]
        key = f"clvmodels-nutpie-{name}-{source_hash}-{model_key}-{settings}"
    return compile_numba_function_src(
        source,
        name,
        # a module name for numba to rebuild the function's environment from the cache
        global_env={"__name__": __name__, "numba": numba, "math": math, "model_fn": model_fn}
        | constants,
        cache_key=key,
    )


def _hooks(nutpie_logp, nutpie_expand, cache: bool, guarded: bool):
    """Replacements of nutpie's ``_make_c_logp_func`` and ``_make_c_expand_func``: they
    return ``(python function, C signature)``, which nutpie compiles with ``numba.cfunc``."""

    def logp_hook(n_dim, logp_fn, user_data, shared_names, shared_data):
        if shared_names:  # user data to unpack: nutpie's own entry point
            if cache:
                raise _NotCacheable("shared variables")
            return nutpie_logp(n_dim, logp_fn, user_data, shared_names, shared_data)
        source = _LOGP_SOURCE_GUARDED if guarded else _LOGP_SOURCE_PLAIN
        constants = {"n_dim": n_dim, "guarded": int(guarded)}
        func = _entry_function(source, "logp_entry", logp_fn, constants, cache)
        return func, _signature("n", "p", "p", "p")

    def expand_hook(n_dim, n_expanded, expand_fn, user_data, shared_names, shared_data):
        if shared_names:
            if cache:
                raise _NotCacheable("shared variables")
            return nutpie_expand(n_dim, n_expanded, expand_fn, user_data, shared_names, shared_data)
        constants = {"n_dim": n_dim, "n_expanded": n_expanded}
        func = _entry_function(_EXPAND_SOURCE, "expand_entry", expand_fn, constants, cache)
        return func, _signature("n", "n", "p", "p")

    return logp_hook, expand_hook


def may_raise(model) -> bool:
    """Whether the model's compiled log density can raise an exception.

    pytensor's numba code follows numpy's error model (a division by zero gives inf, not an
    exception); what raises are assertions other than PyMC's parameter checks (which PyMC's
    compilation turns into ``-inf`` switches, or removes with ``check_bounds=False``) and Ops
    from outside pytensor and PyMC, unless they declare ``never_raises = True`` (the fused
    BG/NBD likelihood does: non-finite values, shown to nuts-rs by return codes 3 / 4).
    """
    from pymc.logprob.utils import CheckParameterValue
    from pytensor.graph.traversal import applys_between
    from pytensor.raise_op import CheckAndRaise

    for node in applys_between(model.value_vars, [model.logp()]):
        op = node.op
        if isinstance(op, CheckAndRaise) and not isinstance(op, CheckParameterValue):
            return True
        if not type(op).__module__.startswith(("pytensor.", "pymc.")) and not getattr(
            op, "never_raises", False
        ):
            return True
    return False


def compile_for_nutpie(model, **kwargs: Any):
    """``nutpie.compile_pymc_model(model, backend="numba", **kwargs)`` with the entry points
    of this module (see the module docstring): cached on disk when the model function is,
    else compiled (quickly) in this process."""
    import nutpie
    from nutpie import compile_pymc

    if not all(callable(getattr(compile_pymc, name, None)) for name in _HOOKS):
        return nutpie.compile_pymc_model(model, backend="numba", **kwargs)
    nutpie_logp, nutpie_expand = compile_pymc._make_c_logp_func, compile_pymc._make_c_expand_func
    guarded = may_raise(model)
    with _LOCK:  # the hooks are swapped for the duration of this compilation only
        try:
            for cache in (True, False):
                hooks = _hooks(nutpie_logp, nutpie_expand, cache, guarded)
                compile_pymc._make_c_logp_func, compile_pymc._make_c_expand_func = hooks
                try:
                    return nutpie.compile_pymc_model(
                        model, backend="numba", **kwargs, **({"cache": True} if cache else {})
                    )
                except _NotCacheable:
                    continue
        finally:
            compile_pymc._make_c_logp_func = nutpie_logp
            compile_pymc._make_c_expand_func = nutpie_expand
    raise AssertionError("unreachable: the uncached compilation raises no _NotCacheable")
