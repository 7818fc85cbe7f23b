"""Weights on disk: :func:`save` and :func:`load` for any tree of arrays.

The same reader and writer sit behind :meth:`funcnn.Module.save_weights` and
:meth:`funcnn.Module.load_weights`, so every path into or out of a file
keeps these promises:

* **Bit-exact.** Arrays are written by MLX itself (``mx.save_safetensors``,
  ``mx.savez``), so every dtype round-trips bit for bit, bfloat16 and float16
  included (float64 only in ``.npz``: MLX cannot write it to safetensors).
  ``.safetensors`` files also carry ``metadata`` (``str -> str``).
* **Atomic.** A file is written to a temporary file in the target's
  directory, flushed to disk, then renamed over the target: a crash or a
  full disk leaves the old checkpoint, never a torn one.
* **Checked before use.** Headers are read and checked against the file size
  before MLX allocates anything (a header that claims absurd sizes is an
  error, not an allocation); arrays are evaluated inside :func:`load` (MLX
  loads ``.npz`` lazily, so a corrupt file would otherwise fail at some
  later step); nothing is ever unpickled.
* **Strict about shape.** Loading against a template (``like``) reports
  every problem at once -- unexpected and missing names, values that are not
  arrays, wrong shapes and, if asked, wrong dtypes -- and returns nothing
  unless all is well.

Example:
    >>> import os, tempfile
    >>> import mlx.core as mx
    >>> import funcnn as nn
    >>> params = {"w": mx.ones((2, 3), dtype=mx.bfloat16), "layers": [{"b": mx.zeros(3)}]}
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
    >>> nn.save(path, params, metadata={"step": "100"})
    >>> tree, meta = nn.load(path, like=params, return_metadata=True)
    >>> tree["w"].dtype, tree["layers"][0]["b"].shape, meta
    (mlx.core.bfloat16, (3,), {'step': '100'})
"""

from __future__ import annotations

import errno
import json
import math
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Optional, Union

import mlx.core as mx

from .tree import tree_flatten, tree_map_with_path, tree_unflatten

__all__ = ["save", "load", "MismatchError", "Problem", "read_arrays", "write_arrays"]

PathLike = Union[str, os.PathLike]
WRITABLE = (".safetensors", ".npz")
# .gguf, which mx.load also reads, is refused: MLX 0.32.4 crashes the process
# (SIGSEGV) on a damaged .gguf, and funcnn cannot check that format first.
READABLE = (".safetensors", ".npz")

# The safetensors format itself caps its JSON header at 100 MB.
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_SAFETENSORS_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8,
    "F8_E4M3": 1, "F8_E5M2": 1,
}


# ----------------------------------------------------------------------
# Problems found when weights are checked against a template
# ----------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason a set of named weights does not fit a template.

    ``kind`` is ``"unexpected"``, ``"missing"``, ``"not_array"``, ``"shape"``
    or ``"dtype"``; ``expected``/``received`` are shapes, dtypes or types
    (``None`` where there is nothing to show).
    """

    kind: str
    path: str
    expected: Any = None
    received: Any = None


class MismatchError(ValueError):
    """Weights that do not fit their template; ``problems`` lists all of them."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def find_problems(
    expected: Mapping[str, mx.array], received: Mapping[str, Any], check_dtype: bool = False
) -> list[Problem]:
    """Every way ``received`` (name -> value) fails to match ``expected``.

    Order: unexpected names (sorted), missing names (sorted), then per
    expected name in its order a non-array value, a wrong shape or (with
    ``check_dtype``) a wrong dtype -- the order in which :mod:`mlx.nn`
    reports the first of them.
    """
    problems = [Problem("unexpected", k) for k in sorted(received.keys() - expected.keys())]
    problems += [Problem("missing", k) for k in sorted(expected.keys() - received.keys())]
    for k, want in expected.items():
        if k not in received:
            continue
        got = received[k]
        if not isinstance(got, mx.array):
            problems.append(Problem("not_array", k, mx.array, type(got)))
        elif got.shape != want.shape:
            problems.append(Problem("shape", k, want.shape, got.shape))
        elif check_dtype and got.dtype != want.dtype:
            problems.append(Problem("dtype", k, want.dtype, got.dtype))
    return problems


def describe_problems(problems: list[Problem]) -> str:
    """The problems in :mod:`mlx.nn`'s words, one group after another.

    The first group reads exactly as the one error :mod:`mlx.nn` would raise
    (``Received 2 parameters not in model: ...``); the others follow it.
    """
    groups: list[str] = []
    for kind, head in (("unexpected", "Received {n} parameters not in model: \n{names}."),
                       ("missing", "Missing {n} parameters: \n{names}.")):
        names = [p.path for p in problems if p.kind == kind]
        if names:
            groups.append(head.format(n=len(names), names=",\n".join(names)))
    for p in problems:
        if p.kind == "not_array":
            groups.append(f"Expected mx.array but received {p.received} for parameter {p.path}")
        elif p.kind == "shape":
            groups.append(
                f"Expected shape {p.expected} but received shape {p.received} "
                f"for parameter {p.path}"
            )
        elif p.kind == "dtype":
            groups.append(
                f"Expected dtype {_dtype_name(p.expected)} but received dtype "
                f"{_dtype_name(p.received)} for parameter {p.path}"
            )
    return "\n".join(groups)


def _dtype_name(dtype: Any) -> str:
    return str(dtype).rpartition(".")[2]


# ----------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------


def _extension(path: str) -> str:
    return os.path.splitext(path)[1]  # case-sensitive, as mlx.nn's save_weights


def write_arrays(
    path: PathLike, arrays: Mapping[str, mx.array], metadata: Optional[Mapping[str, str]] = None
) -> None:
    """Write named arrays to ``path`` atomically (``.safetensors`` or ``.npz``).

    Everything that can be checked is checked before the file is touched;
    the arrays are evaluated first, so a failing computation writes nothing.
    """
    path = _as_path(path, "path")
    ext = _extension(path)
    if ext not in WRITABLE:
        raise ValueError(f"Unsupported file extension for {path}. Use '.npz' or '.safetensors'.")
    for name, value in arrays.items():
        if not isinstance(value, mx.array):
            raise TypeError(f"Only arrays can be saved; {name!r} is a {type(value).__name__}.")
    if metadata is not None:
        if ext != ".safetensors":
            raise ValueError(
                f"Metadata can only be stored in .safetensors files, not in {path!r}."
            )
        _check_metadata(metadata)
    if ext == ".safetensors":
        if "__metadata__" in arrays:
            raise ValueError("'__metadata__' is reserved by the safetensors format.")
        wide = [k for k, x in arrays.items() if x.dtype == mx.float64]
        if wide:
            raise ValueError(
                f"MLX cannot write float64 arrays to .safetensors ({', '.join(wide)}); "
                "use a .npz file or convert them (x.astype(mx.float32))."
            )
    mx.eval(list(arrays.values()))

    def write(f: IO[bytes]) -> None:
        if ext == ".safetensors":
            mx.save_safetensors(f, dict(arrays), metadata=dict(metadata or {}))
        else:
            mx.savez(f, **arrays)

    atomic_write(path, write)


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict of str to str, not {type(metadata).__name__}.")
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(
                f"metadata must map str to str; got {k!r}: {v!r} "
                f"({type(k).__name__} -> {type(v).__name__})."
            )


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Run ``write`` on a temporary file next to ``path``, then move it there.

    The data is flushed and fsynced before the rename and the directory
    afterwards, so after a crash ``path`` holds either the old file or the
    complete new one.  On any error the temporary file is removed and
    ``path`` is untouched.
    """
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "Cannot save weights over a directory", path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "The directory to save into does not exist", directory)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode open() would.
        os.chmod(tmp, _default_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _default_mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o777  # keep the mode of the file replaced
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename itself is done
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------


def _as_path(path: Any, name: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, not {type(path).__name__}.")
    return os.fspath(path)


def read_arrays(path: PathLike) -> tuple[dict[str, mx.array], dict[str, str]]:
    """Named arrays and metadata from a ``.safetensors`` or ``.npz`` file.

    The header is checked against the file before MLX reads it, and every
    array is evaluated before this returns, so a damaged file raises here
    (``ValueError`` naming the file), never at a later step.
    """
    path = _as_path(path, "path")
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "No such weights file", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "Expected a weights file, got a directory", path)
    ext = _extension(path)
    if ext == ".npy":
        raise ValueError(
            f"{path!r} holds a single array, not named weights; use a .npz or .safetensors file."
        )
    if ext not in READABLE:
        raise ValueError(
            f"Unsupported file extension for {path}. Use '.npz' or '.safetensors' "
            "(funcnn does not read .gguf: MLX crashes on damaged ones; use mx.load)."
        )
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"{path!r} is empty (0 bytes), not a {ext} file.")
    if ext == ".safetensors":
        _check_safetensors(path, size)
    elif ext == ".npz":
        _check_npz(path)
    try:
        if ext == ".npz":
            arrays, metadata = mx.load(path), {}
        else:
            arrays, metadata = mx.load(path, return_metadata=True)
    except Exception as err:  # noqa: BLE001 - MLX raises several types for bad files
        raise ValueError(f"{path!r} is not a readable {ext} file: {err}") from err
    try:
        mx.eval(list(arrays.values()))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{path!r} is damaged: reading its arrays failed: {err}") from err
    return dict(arrays), {k: v for k, v in metadata.items() if isinstance(v, str)}


def _corrupt(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid weights file: {why}.")


def _check_safetensors(path: str, size: int) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _corrupt(path, f"{size} bytes is too short for a .safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, _MAX_HEADER_BYTES):
            raise _corrupt(path, f"its header claims {n} bytes but the file has {size}")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_names)
    except ValueError as err:  # also UnicodeDecodeError, JSONDecodeError
        raise _corrupt(path, f"its header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is not a JSON object")
    data_bytes = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            if entry is not None and not isinstance(entry, dict):  # MLX writes null
                raise _corrupt(path, "its __metadata__ is not an object")
            continue
        try:
            itemsize = _SAFETENSORS_ITEMSIZE[entry["dtype"]]
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _corrupt(path, f"tensor {name!r} has a malformed entry {entry!r}") from None
        if any(d < 0 for d in shape):
            raise _corrupt(path, f"tensor {name!r} has a negative dimension in {tuple(shape)}")
        if not 0 <= begin <= end <= data_bytes:
            raise _corrupt(
                path, f"tensor {name!r} claims bytes {begin}..{end} of {data_bytes} data bytes"
            )
        if math.prod(shape) * itemsize != end - begin:
            raise _corrupt(
                path,
                f"tensor {name!r} of shape {tuple(shape)} and dtype {entry['dtype']} "
                f"needs {math.prod(shape) * itemsize} bytes but has {end - begin}",
            )


def _no_duplicate_names(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"tensor {twice[0]!r} appears twice in the header")
    return dict(pairs)


def _check_npz(path: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = [m.filename for m in members]
            if len(set(names)) != len(names):
                twice = sorted({n for n in names if names.count(n) > 1})
                raise _corrupt(path, f"member {twice[0]!r} appears twice")
            claimed = sum(m.file_size for m in members)
            if claimed > _memory_bytes():
                raise _corrupt(path, f"it claims {claimed} bytes of arrays, more than this machine's memory")
            for member in members:
                if not member.filename.endswith(".npy"):
                    raise _corrupt(path, f"member {member.filename!r} is not a .npy array")
                with archive.open(member) as f:
                    _check_npy_header(path, member, f)
            bad = archive.testzip()
            if bad is not None:
                raise _corrupt(path, f"member {bad!r} fails its checksum")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
        raise _corrupt(path, f"it is not a readable .npz archive ({err})") from None


def _check_npy_header(path: str, member: zipfile.ZipInfo, f: IO[bytes]) -> None:
    import numpy as np  # only .npz headers need it; importing it would double funcnn's import time

    name = member.filename
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
    except (ValueError, OSError, EOFError) as err:
        raise _corrupt(path, f"member {name!r} has a bad .npy header ({err})") from None
    if dtype.hasobject:
        raise _corrupt(path, f"member {name!r} holds Python objects, which would need unpickling")
    needed = math.prod(shape) * dtype.itemsize
    if offset + needed != member.file_size:
        raise _corrupt(
            path,
            f"member {name!r} of shape {shape} and dtype {dtype} needs {needed} bytes "
            f"but has {member.file_size - offset}",
        )


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


# ----------------------------------------------------------------------
# The functional API
# ----------------------------------------------------------------------


def _param_tree(tree: Any) -> Any:
    """A Module's parameters (funcnn or mlx.nn, duck-typed), any other tree as is."""
    if isinstance(tree, dict) and callable(getattr(type(tree), "parameters", None)):
        return tree.parameters()
    return tree


def _named_arrays(tree: Any, what: str) -> dict[str, mx.array]:
    if isinstance(tree, mx.array):
        raise TypeError(f"{what} must be a tree of arrays, not a bare array; wrap it, e.g. {{'w': w}}.")
    named: dict[str, mx.array] = {}
    for k, x in tree_flatten(_param_tree(tree)):
        if x is None:
            continue
        if not isinstance(x, mx.array):
            raise TypeError(
                f"{what} may hold only arrays (and None, which is skipped); "
                f"{k!r} is a {type(x).__name__}: store it as mx.array(...) or in metadata."
            )
        if k in named:
            raise ValueError(f"Two entries of {what} are both named {k!r}; rename one.")
        named[k] = x
    return named


def save(path: PathLike, tree: Any, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Save a tree of arrays (parameters, optimizer state, a Module) atomically.

    Args:
        path: A ``.safetensors`` or ``.npz`` file name.  It is written to a
            temporary file in the same directory and renamed into place.
        tree: Nested dicts, lists and tuples of arrays, or a Module (its
            ``parameters()``).  Names are dotted paths (``"layers.0.weight"``);
            ``None`` leaves are skipped, other non-arrays are a ``TypeError``.
        metadata: ``str -> str`` stored in a ``.safetensors`` header.

    Example:
        >>> import os, tempfile
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
        >>> nn.save(path, {"a": [mx.zeros(2), mx.ones(1)]})
        >>> nn.load(path)["a"][1].tolist()
        [1.0]
    """
    write_arrays(path, _named_arrays(tree, "tree"), metadata)


def load(
    path: PathLike,
    like: Any = None,
    *,
    strict: bool = True,
    check_dtype: bool = False,
    return_metadata: bool = False,
) -> Any:
    """Load a tree of arrays saved by :func:`save` (or by ``mx.savez``, ``save_weights``, ...).

    Args:
        path: A ``.safetensors`` or ``.npz`` file.
        like: Optional template: a tree of arrays or a Module (its
            ``parameters()``).  The result then has the template's structure
            and the file must match it: with ``strict`` every name exactly,
            always every shape, with ``check_dtype`` every dtype.  All
            problems are reported together in one :class:`MismatchError`
            (a ``ValueError``).  Without ``like``, the tree is rebuilt from
            the dotted names (lists by index; dict order is ``mx.load``'s,
            not the saved tree's: pass ``like`` to get that back).
        strict: With ``like``: ``False`` ignores names the template lacks and
            keeps the template's value where the file lacks a name.
        check_dtype: With ``like``: dtypes must match too.
        return_metadata: Return ``(tree, metadata)``.

    Raises:
        FileNotFoundError, IsADirectoryError: no file at ``path``.
        ValueError: unsupported extension, an empty, truncated or damaged
            file, or a mismatch with ``like`` (:class:`MismatchError`).

    Example:
        >>> import os, tempfile
        >>> import mlx.core as mx
        >>> import funcnn as nn
        >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> nn.save(path, {"w": mx.zeros((2, 2))})
        >>> nn.load(path, like={"w": mx.zeros((3,))})
        Traceback (most recent call last):
        ...
        funcnn.checkpoint.MismatchError: ...: 1 problem with the weights:
        Expected shape (3,) but received shape (2, 2) for parameter w
    """
    arrays, metadata = read_arrays(path)
    if like is None:
        tree = tree_unflatten(list(arrays.items())) if arrays else {}
    else:
        tree = _fill(os.fspath(path), like, arrays, strict, check_dtype)
    return (tree, metadata) if return_metadata else tree


def _fill(path: str, like: Any, arrays: dict, strict: bool, check_dtype: bool) -> Any:
    template = _param_tree(like)
    expected = _named_arrays(template, "like")
    problems = find_problems(expected, arrays, check_dtype)
    if not strict:
        problems = [p for p in problems if p.kind not in ("unexpected", "missing")]
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise MismatchError(
            f"{path}: {count} with the weights:\n{describe_problems(problems)}", problems
        )

    def pick(name: str, leaf: Any) -> Any:
        return arrays.get(name, leaf) if isinstance(leaf, mx.array) else leaf

    return tree_map_with_path(pick, template)
