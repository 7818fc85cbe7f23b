"""A fast BLAS for MLX's Linux CPU build: load the system OpenBLAS before ``mlx.core``.

MLX's Linux CPU wheel links the netlib *reference* BLAS it bundles: a float32
matmul runs at ~4-5 GFLOP/s on one thread.  If an OpenBLAS is loaded into the
global symbol scope (``ctypes.CDLL(path, mode=RTLD_GLOBAL)``) *before*
``mlx.core`` is first imported, MLX's ``cblas_sgemm`` (and its LAPACK calls)
resolve to it instead, with results equal to float32 round-off.  Once
``mlx.core`` is loaded it is too late: MLX keeps the reference BLAS for the
life of the process.

``import funcnn`` calls :func:`preload` first thing, which does this when it is
safe:

* only on Linux (macOS MLX uses Accelerate), and only when ``mlx.core`` is not
  imported yet;
* not when ``FUNCNN_NO_OPENBLAS`` is set (to anything but ``""``, ``0``,
  ``false``, ``no``, ``off``): the opt-out;
* the library: ``FUNCNN_OPENBLAS=/path/to/libopenblas.so.0`` if set (then only
  that one), else the first that exists of the Debian/Ubuntu paths
  (``/usr/lib/<multiarch>/openblas-pthread/libopenblas.so.0``, the alternatives
  link ``/usr/lib/<multiarch>/libopenblas.so.0``, ``openblas-openmp``,
  ``openblas-serial``) and the Fedora/RHEL ones (``/usr/lib64/libopenblasp.so.0``,
  ``libopenblas.so.0``, ``libopenblaso.so.0``).  Debian/Ubuntu:
  ``apt-get install libopenblas0-pthread``.  The library must export
  ``openblas_get_config`` and ``cblas_sgemm`` (checked with a local load before
  it is promoted to the global scope).  An OpenBLAS already in the global scope
  (``LD_PRELOAD``) is used as it is.  Nothing is searched with
  ``ctypes.util.find_library``: it spawns ``ldconfig`` (or ``gcc``) on every
  import; point ``FUNCNN_OPENBLAS`` at other installations instead.  A PyPI
  OpenBLAS built for another CPU crashed with an illegal instruction here, so
  no wheel-provided library is picked up implicitly.
* any ``OSError`` while loading is swallowed and reported by :func:`blas_info`;
  importing funcnn never fails because of it.  Only a failing *explicit*
  ``FUNCNN_OPENBLAS`` is also warned about.

Threads.  OpenBLAS reads its thread count when it loads.  If the user set
``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS`` or ``OMP_NUM_THREADS``, that is
respected.  Otherwise funcnn uses **half the CPUs this process may run on, at
least 1 and at most 4** (on a 2-core machine: 1).  Measured on a shared
2-core x86-64 box (mlx 0.32.4, OpenBLAS 0.3.21, best of 3): a 256x784 @
784x512 matmul ~100-140 GFLOP/s with 1 thread and 50-250 with 2; an MLP
training step (784-512-512-10, batch 256) 6.3-6.6 ms with 1 thread (stable)
against 4.0-11.3 ms with 2, and with the other core busy the 2-thread step was
the slower one (median 17 ms against 10 ms).  The matmul runs on MLX's CPU
stream thread, which becomes OpenBLAS's thread 0; extra OpenBLAS threads
compete with everything else the program runs (data loading, other
processes, pytest workers) and spin after each call.  Half the cores keeps
the rest free; the cap of 4 because the MLP-sized products that funcnn's
models mostly make (~0.2 GFLOP) do not scale further.  The variable is set
only for the load and then restored, so a NumPy imported later keeps its own
default.  :func:`set_num_threads` changes the count at run time.

Kernel.  OpenBLAS 0.3.21 (Debian 12) does not know recent CPUs (e.g. Intel
family 6 model 207) and falls back to its generic ``Prescott`` kernels: ~20
GFLOP/s instead of ~110-150 with ``SkylakeX`` on the same core.  Unless the
user set ``OPENBLAS_CORETYPE``, funcnn sets it (for the load only) from the CPU
flags in ``/proc/cpuinfo``: ``SkylakeX`` when avx512f/cd/bw/dq/vl are all
present, else ``Haswell`` when avx2 and fma are; otherwise it lets OpenBLAS
decide.  Those are the kernels OpenBLAS itself picks for such CPUs when it
knows them (its newer targets use the same float32 GEMM kernels).

Import order.  Code written for :mod:`mlx.nn` imports ``mlx.core`` first.
``python -m funcnn.blas install`` (see :mod:`funcnn.blas`) adds a startup hook
to the active environment that runs :func:`preload` just before ``mlx`` is
first imported, in any process of that environment, whatever the order;
this module then adopts what the hook did (see :data:`HOOK_MODULE`).  The
persistent "no": ``python -m funcnn.blas decline`` writes
:func:`decline_marker` (``$XDG_CONFIG_HOME/funcnn/blas``, default
``~/.config/funcnn/blas``), which keeps the reference BLAS without a warning.
Precedence: ``FUNCNN_NO_OPENBLAS`` when set to anything non-empty (a true
value: off; ``0``/``false``/...: on, marker or not), else the marker.

When ``mlx.core`` was imported first, and an OpenBLAS is available and neither
opt-out is set, one :class:`FuncnnBlasWarning` per process says how to get
the fast path.  It is a warning rather than a log record because the caller can
act on it (import order, or the opt-out); being a ``UserWarning`` subclass, it
can be filtered on its own.  The "once" is funcnn's own (a module flag), so
``warnings.simplefilter("always")`` or reloading funcnn does not repeat it.

Example:
    >>> import funcnn
    >>> info = funcnn.blas_info()
    >>> info["blas"] in ("openblas", "reference", "accelerate", "unknown")
    True
    >>> info["blas"] == "openblas" or isinstance(info["reason"], str)  # why not
    True
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import warnings

__all__ = ["FuncnnBlasWarning", "blas_info", "preload", "set_num_threads"]

OPT_OUT_VAR = "FUNCNN_NO_OPENBLAS"
PATH_VAR = "FUNCNN_OPENBLAS"
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
_MAX_DEFAULT_THREADS = 4


class FuncnnBlasWarning(UserWarning):
    """MLX runs on its slow reference BLAS although a fast OpenBLAS could be used."""


_STATE: dict | None = None  # what preload() found; set once per process
_HANDLE = None  # the loaded OpenBLAS (kept alive for the life of the process)
_WARNED = False


# The startup hook (``python -m funcnn.blas install``) runs this file under this module name,
# before funcnn is imported; funcnn's own copy adopts its state below.
HOOK_MODULE = "_funcnn_blas_early"
DECLINED = "reference"  # the marker file's content


def decline_marker() -> str:
    """The file that records "keep the reference BLAS" (``python -m funcnn.blas decline``).

    Example:
        >>> from funcnn import _blas
        >>> _blas.decline_marker().endswith("funcnn/blas")
        True
    """
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "funcnn", "blas")


def _declined() -> bool:
    try:
        with open(decline_marker()) as f:
            return f.read().strip() == DECLINED
    except (OSError, UnicodeDecodeError):
        return False


def _opt_out_reason() -> str | None:
    """Why OpenBLAS must not be loaded (the variable wins over the marker), or ``None``."""
    value = os.environ.get(OPT_OUT_VAR, "").strip().lower()
    if value:
        return None if value in ("0", "false", "no", "off") else f"disabled by {OPT_OUT_VAR}"
    return "declined (python -m funcnn.blas decline)" if _declined() else None


def _opted_out() -> bool:
    return _opt_out_reason() is not None


def _multiarch() -> list[str]:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return ["x86_64-linux-gnu"]
    if machine in ("aarch64", "arm64"):
        return ["aarch64-linux-gnu"]
    return [f"{machine}-linux-gnu"]


def candidates() -> list[str]:
    """Where funcnn looks for OpenBLAS, in order (``FUNCNN_OPENBLAS`` alone when set)."""
    explicit = os.environ.get(PATH_VAR, "").strip()
    if explicit:
        return [explicit]
    paths = []
    for ma in _multiarch():
        base = f"/usr/lib/{ma}"
        paths += [
            f"{base}/openblas-pthread/libopenblas.so.0",
            f"{base}/libopenblas.so.0",
            f"{base}/openblas-openmp/libopenblas.so.0",
            f"{base}/openblas-serial/libopenblas.so.0",
        ]
    paths += ["/usr/lib64/libopenblasp.so.0", "/usr/lib64/libopenblas.so.0", "/usr/lib64/libopenblaso.so.0"]
    return paths


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _coretype_hint() -> str | None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    flags = _cpu_flags()
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx", "avx2", "fma"} <= flags:
        return "Haswell"
    return None


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """funcnn's OpenBLAS thread count when the user sets none: half the usable CPUs, in [1, 4]."""
    return max(1, min(_MAX_DEFAULT_THREADS, _usable_cpus() // 2))


def _user_threads() -> str | None:
    for var in _THREAD_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return f"{var}={value} (environment)"
    return None


def _global_openblas():
    """A handle on the process's global scope if an OpenBLAS is already there (LD_PRELOAD)."""
    try:
        main = ctypes.CDLL(None)
        main.openblas_get_config  # noqa: B018 - raises AttributeError when absent
        main.cblas_sgemm  # noqa: B018
        return main
    except (AttributeError, OSError):
        return None


def _load(path: str, env: dict[str, str]):
    """Load ``path`` locally with ``env`` set, check it is an OpenBLAS, then promote it to global."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        handle = ctypes.CDLL(path, mode=getattr(os, "RTLD_LOCAL", 0))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for symbol in ("openblas_get_config", "cblas_sgemm"):
        if not hasattr(handle, symbol):
            raise OSError(f"{path} is not an OpenBLAS with CBLAS (no {symbol})")
    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)  # the same object, now in the global scope


def _warn_once(message: str) -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(message, FuncnnBlasWarning, stacklevel=3)


def preload() -> dict:
    """Load OpenBLAS for MLX if it is safe and not done yet; return what happened.

    Called by ``import funcnn`` before anything imports ``mlx.core``; calling it
    again changes nothing. Never raises for a missing or broken library.
    """
    global _STATE, _HANDLE
    if _STATE is not None:
        return _STATE
    state = {"preloaded": False, "reason": None, "path": None, "threads_from": None, "core_from": None}
    _STATE = state
    if not sys.platform.startswith("linux"):
        state["reason"] = "not Linux"
        return state
    opt_out = _opt_out_reason()
    if opt_out:
        state["reason"] = opt_out
        return state
    existing = _global_openblas()
    if existing is not None and ("mlx.core" not in sys.modules or "openblas" in os.environ.get("LD_PRELOAD", "")):
        _HANDLE = existing
        state["path"] = "(already in the global scope, e.g. LD_PRELOAD)"
        state["threads_from"] = state["core_from"] = "set by whoever loaded it"
        return state
    paths = candidates()
    explicit = bool(os.environ.get(PATH_VAR, "").strip())
    if "mlx.core" in sys.modules:
        state["reason"] = "mlx.core imported first"
        available = [p for p in paths if os.path.exists(p)]
        if available:
            _warn_once(
                "funcnn: mlx.core was imported before funcnn, so MLX keeps its slow reference BLAS "
                f"(~5 GFLOP/s float32 matmul) although OpenBLAS is available ({available[0]}). "
                "For the fast path in any import order run `python -m funcnn.blas install` once "
                "(a startup hook in this environment), or import funcnn before mlx.core (and before "
                "mlx.nn or anything that imports it). To keep the reference BLAS and silence this: "
                f"`python -m funcnn.blas decline` (or set {OPT_OUT_VAR}=1)."
            )
        else:
            state["reason"] = "no OpenBLAS found"
        return state
    paths = [p for p in paths if explicit or os.path.exists(p)]
    if not paths:
        state["reason"] = "no OpenBLAS found"
        return state
    env = {}
    user_threads = _user_threads()
    if user_threads:
        state["threads_from"] = user_threads
    else:
        env["OPENBLAS_NUM_THREADS"] = str(default_threads())
        state["threads_from"] = f"funcnn default: half of {_usable_cpus()} usable CPUs, in [1, {_MAX_DEFAULT_THREADS}]"
    user_core = os.environ.get("OPENBLAS_CORETYPE", "").strip()
    hint = None if user_core else _coretype_hint()
    if user_core:
        state["core_from"] = f"OPENBLAS_CORETYPE={user_core} (environment)"
    elif hint:
        env["OPENBLAS_CORETYPE"] = hint
        state["core_from"] = f"funcnn, from the CPU flags (OPENBLAS_CORETYPE={hint})"
    else:
        state["core_from"] = "OpenBLAS's own detection"
    errors = []
    for path in paths:
        try:
            _HANDLE = _load(path, env)
        except (OSError, ValueError) as e:  # ValueError: a NUL byte in FUNCNN_OPENBLAS
            errors.append(str(e) if path in str(e) else f"{path}: {e}")
            continue
        state.update(preloaded=True, path=path)
        return state
    state.update(reason="load failed: " + "; ".join(errors), threads_from=None, core_from=None)
    if explicit:
        _warn_once(f"funcnn: could not load {PATH_VAR}={paths[0]}, MLX keeps its reference BLAS: {errors[0]}")
    return state


def _adopt_hook() -> None:
    """Take over what the startup hook's copy of this file did, if it ran in this process."""
    global _STATE, _HANDLE, _WARNED
    early = sys.modules.get(HOOK_MODULE)
    if early is None or early is sys.modules.get(__name__) or getattr(early, "_STATE", None) is None:
        return
    _STATE, _HANDLE, _WARNED = dict(early._STATE), early._HANDLE, bool(getattr(early, "_WARNED", False))


def _call_str(name: str) -> str | None:
    fn = getattr(_HANDLE, name, None)
    if fn is None:
        return None
    fn.restype = ctypes.c_char_p
    value = fn()
    return value.decode(errors="replace").strip() if value else None


def _fallback_blas() -> str:
    """What MLX uses when no OpenBLAS is active: its bundled netlib BLAS if we can see it."""
    if sys.platform == "darwin":
        return "accelerate"
    try:
        import importlib.util

        spec = importlib.util.find_spec("mlx")  # namespace package: does not load mlx.core
        for location in (spec.submodule_search_locations or []) if spec else []:
            libs = os.path.join(os.path.dirname(location), "mlx_cpu.libs")
            if os.path.isdir(libs) and any(n.startswith("libblas") for n in os.listdir(libs)):
                return "reference"
    except (ImportError, OSError, ValueError):
        pass
    return "unknown"


def blas_info() -> dict:
    """Which BLAS MLX's CPU matmuls use in this process, and why.

    Keys: ``blas`` (``"openblas"``; else ``"reference"``, the netlib BLAS MLX's
    Linux wheel bundles; ``"accelerate"`` on macOS; or ``"unknown"``),
    ``preloaded`` (funcnn loaded OpenBLAS on import), ``reason`` (why OpenBLAS
    is not active: ``"disabled by FUNCNN_NO_OPENBLAS"``, ``"declined (python -m
    funcnn.blas decline)"``, ``"mlx.core imported first"``, ``"no OpenBLAS found"``, ``"not Linux"``, ``"load failed: ..."``;
    ``None`` when it is), ``path``, ``version`` (``openblas_get_config()``),
    ``core`` (the kernel set, ``openblas_get_corename()``), ``threads``
    (``openblas_get_num_threads()``, live), ``threads_from`` and ``core_from``
    (who chose them).
    """
    state = dict(preload())
    info = {"blas": None, **state, "version": None, "core": None, "threads": None}
    if _HANDLE is not None:
        info["blas"] = "openblas"
        info["version"] = _call_str("openblas_get_config")
        info["core"] = _call_str("openblas_get_corename")
        get_threads = getattr(_HANDLE, "openblas_get_num_threads", None)
        info["threads"] = int(get_threads()) if get_threads is not None else None
    else:
        info["blas"] = _fallback_blas()
    return info


def set_num_threads(n: int) -> int:
    """Set OpenBLAS's thread count at run time; returns the count now in effect.

    Raises ``RuntimeError`` when OpenBLAS is not the active BLAS.
    """
    if _HANDLE is None:
        raise RuntimeError(f"OpenBLAS is not active ({preload()['reason']})")
    n = int(n)
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    _HANDLE.openblas_set_num_threads(ctypes.c_int(n))
    return int(_HANDLE.openblas_get_num_threads())


_adopt_hook()
