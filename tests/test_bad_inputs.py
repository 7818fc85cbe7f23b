"""The bad-input catalogue of funcnn's checkpoint I/O.

Every bad input to ``funcnn.load``, ``funcnn.save``, ``Module.load_weights``
and ``Module.save_weights`` raises a specific exception whose message names
the problem and the file (or the entry of the tree), and changes nothing: the
folder holds the same files (bytes and modes; no temporary files are left)
and a model that refused its weights keeps the ones it had.

Damaged files are read in fresh interpreters (a few per interpreter, with a
timeout; see ``_subproc.py``): many failing evaluations of corrupt files in
one process deadlocked ``mx.eval``.  Python values run in-process.

=============================================  ===================  ==========================================
input                                          exception            message fragment
=============================================  ===================  ==========================================
missing file                                   FileNotFoundError    ``No such weights file: '<path>'``
folder given as the file                       IsADirectoryError    ``got a directory: '<path>'``
empty file (0 bytes) .safetensors/.npz         ValueError           ``<path> is empty (0 bytes)``
.npy file (valid, empty or garbage)            ValueError           ``holds a single array``
wrong extension (.pt, .txt, none, .NPZ)        ValueError           ``Unsupported file extension for <path>``
.safetensors cut inside the 8-byte length      ValueError           ``too short for a .safetensors header``
.safetensors cut inside the JSON header        ValueError           ``its header claims N bytes but the file has M``
header length 2**60                            ValueError           ``its header claims 1152921504606846976 bytes``
header not JSON / not UTF-8                    ValueError           ``its header is not valid JSON``
header a JSON list                             ValueError           ``its header is not a JSON object``
.safetensors cut inside the data               ValueError           ``tensor '<name>' claims bytes a..b of n data bytes``
offsets past the end of the file               ValueError           ``claims bytes 0..4000 of 16 data bytes``
shape and offsets disagree / shape 10**12      ValueError           ``needs N bytes but has M``
unknown dtype, missing field                   ValueError           ``has a malformed entry``
__metadata__ not an object / not str -> str    ValueError           ``__metadata__ is not an object`` / ``not a readable``
random bytes (.safetensors, .npz)              ValueError           ``header claims`` / ``not a readable .npz archive``
.npz cut (zip directory, local header, data)   ValueError           ``not a readable .npz archive``
.npz member whose header claims (10**12,)      ValueError           ``needs 4000000000000 bytes but has 16``
.npz member with short data (right shape)      ValueError           ``needs 48 bytes but has 8``
.npz object array (made with allow_pickle)     ValueError           ``holds Python objects`` (never unpickled)
.npz member not .npy / bad .npy magic          ValueError           ``is not a .npy array`` / ``bad .npy header``
.npz with a flipped data byte                  ValueError           ``fails its checksum``
.gguf (any: mx.load segfaults on damaged ones) ValueError           ``Unsupported file extension``
a name twice in one .safetensors / .npz        ValueError           ``'<name>' appears twice``
file: unknown / missing names                  MismatchError        ``Received 1 parameters not in model`` ...
file: wrong shape                              MismatchError        ``Expected shape (3, 4) but received ...``
file: wrong dtype (check_dtype=True)           MismatchError        ``Expected dtype float32 but received ...``
weights list: duplicate name                   ValueError           ``Duplicate weight name 'layers.0.bias'``
weights list: non-array value                  MismatchError        ``Expected mx.array but received <class``
save: non-array leaf                           TypeError            ``'a.b' is a int``
save: a bare array                             TypeError            ``not a bare array``
save: names "a.b" twice                        ValueError           ``both named 'a.b'``
save: float64 to .safetensors                  ValueError           ``cannot write float64 ... (d)``
save: metadata with .npz                       ValueError           ``Metadata can only be stored in .safetensors``
save: metadata not str -> str / not a dict     TypeError            ``metadata must map str to str``
save: "__metadata__" as a name                 ValueError           ``'__metadata__' is reserved``
save/load: path not str or PathLike            TypeError            ``must be a str or os.PathLike``
save: folder as target / missing folder        IsADirectoryError /  ``Cannot save weights over a directory`` /
                                               FileNotFoundError    ``The directory to save into does not exist``
=============================================  ===================  ==========================================

``test_mlx_nn_is_lazy`` documents why the checks matter: ``mlx.nn``'s
``load_weights`` accepts an ``.npz`` whose member data is cut short and the
model then fails at its first evaluation.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, NamedTuple

import funcnn  # before mlx.core: funcnn picks its BLAS at import

import mlx.core as mx  # noqa: I001
import numpy as np
import pytest
from _subproc import execute, make_model, run_batch, run_script

# ----------------------------------------------------------------------
# Valid files to damage
# ----------------------------------------------------------------------

_VALID: dict[str, bytes] = {}


def valid(ext: str) -> bytes:
    """The bytes of ``make_model()``'s weights saved as ``.safetensors`` or ``.npz``."""
    if ext not in _VALID:
        buf = io.BytesIO()
        params = dict(funcnn.tree_flatten(make_model().parameters()))
        if ext == "safetensors":
            mx.save_safetensors(buf, params)
        else:
            mx.savez(buf, **params)
        _VALID[ext] = buf.getvalue()
    return _VALID[ext]


def header_len() -> int:
    return struct.unpack("<Q", valid("safetensors")[:8])[0]


def safetensors(header: Any, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def zip_twice(name: str, first: bytes, second: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z, pytest.warns(UserWarning, match="Duplicate"):
        z.writestr(name, first)
        z.writestr(name, second)
    return buf.getvalue()


def npy_header(shape: tuple, dtype: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def garbage(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def flipped_data_byte() -> bytes:
    data = bytearray(valid("npz"))
    npy = data.index(b"\x93NUMPY")  # the first member (a version 1.0 .npy)
    at = npy + 10 + struct.unpack("<H", data[npy + 8 : npy + 10])[0]  # its first data byte
    data[at] ^= 0xFF
    return bytes(data)


def pickled_object_npz(marker: Path) -> bytes:
    class Evil:  # unpickling it would create ``marker``
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buf = io.BytesIO()
    np.savez(buf, w=np.array([Evil()], dtype=object))  # allow_pickle is numpy's default here
    return buf.getvalue()


# ----------------------------------------------------------------------
# The catalogue
# ----------------------------------------------------------------------


class Case(NamedTuple):
    id: str
    build: Callable[[Path], list]  # makes files under its folder; returns the call's arguments
    call: str  # "load", "load_like", "load_weights", "save" or "save_weights"
    exc: type
    match: str  # regex searched in str(exception)
    kwargs: dict = {}
    names_file: bool = True  # the message names the file (the first argument)
    isolated: bool = False  # reads a damaged file: run it in a fresh interpreter
    xfail: str = ""


CASES: list[Case] = []
READS = ("load", "load_weights")


def file_case(id, name, data, exc, match, calls=READS, isolated=True, xfail=""):
    """A file ``name`` holding ``data`` (bytes, or a function of the folder), read by each call."""

    def build(d: Path) -> list:
        content = data(d) if callable(data) else data
        (d / name).write_bytes(content)
        return [str(d / name)]

    for call in calls:
        CASES.append(Case(f"{id}-{call}", build, call, exc, match, isolated=isolated, xfail=xfail))


def value_case(id, call, build, exc, match, names_file=False, **kwargs):
    CASES.append(Case(id, build, call, exc, match, kwargs, names_file=names_file))


CORRUPT = r"is not a valid weights file: "
H = header_len

# --- damaged .safetensors ---
file_case("st-cut-in-length-3", "w.safetensors", lambda d: valid("safetensors")[:3], ValueError,
          CORRUPT + r"3 bytes is too short for a \.safetensors header")
file_case("st-cut-in-length-7", "w.safetensors", lambda d: valid("safetensors")[:7], ValueError,
          r"7 bytes is too short")
file_case("st-cut-in-header-9", "w.safetensors", lambda d: valid("safetensors")[:9], ValueError,
          CORRUPT + r"its header claims \d+ bytes but the file has 9\.")
file_case("st-cut-in-header-mid", "w.safetensors", lambda d: valid("safetensors")[: 8 + H() // 2],
          ValueError, r"its header claims \d+ bytes but the file has \d+")
file_case("st-cut-before-data", "w.safetensors", lambda d: valid("safetensors")[: 8 + H()],
          ValueError, r"tensor '[\w.]+' claims bytes \d+\.\.\d+ of 0 data bytes")
file_case("st-cut-in-data", "w.safetensors", lambda d: valid("safetensors")[: 8 + H() + 10],
          ValueError, r"tensor '[\w.]+' claims bytes \d+\.\.\d+ of 10 data bytes")
file_case("st-cut-last-byte", "w.safetensors", lambda d: valid("safetensors")[:-1], ValueError,
          r"claims bytes \d+\.\.\d+ of \d+ data bytes")
file_case("st-header-2**60", "w.safetensors",
          lambda d: struct.pack("<Q", 2**60) + valid("safetensors")[8:], ValueError,
          r"its header claims 1152921504606846976 bytes but the file has \d+")
file_case("st-header-list", "w.safetensors", safetensors([1, 2]), ValueError,
          r"its header is not a JSON object")
file_case("st-header-not-json", "w.safetensors", safetensors(b"{not json"), ValueError,
          r"its header is not valid JSON")
file_case("st-header-not-utf8", "w.safetensors", safetensors(b"\xff\xfe\xfd"), ValueError,
          r"its header is not valid JSON")
file_case("st-offsets-past-end", "w.safetensors",
          safetensors({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, bytes(16)),
          ValueError, r"tensor 'w' claims bytes 0\.\.4000 of 16 data bytes")
file_case("st-offsets-reversed", "w.safetensors",
          safetensors({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}, bytes(16)),
          ValueError, r"tensor 'w' claims bytes 8\.\.4")
file_case("st-shape-vs-offsets", "w.safetensors",
          safetensors({"w": {"dtype": "F32", "shape": [10], "data_offsets": [0, 4]}}, bytes(4)),
          ValueError, r"tensor 'w' of shape \(10,\) and dtype F32 needs 40 bytes but has 4")
file_case("st-shape-10**12", "w.safetensors",
          safetensors({"w": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 16]}}, bytes(16)),
          ValueError, r"needs 4000000000000 bytes but has 16")
file_case("st-negative-dim", "w.safetensors",
          safetensors({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, bytes(16)),
          ValueError, r"tensor 'w' has a negative dimension in \(-4,\)")
file_case("st-unknown-dtype", "w.safetensors",
          safetensors({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
          ValueError, r"tensor 'w' has a malformed entry")
file_case("st-no-offsets", "w.safetensors",
          safetensors({"w": {"dtype": "F32", "shape": [1]}}, bytes(4)),
          ValueError, r"tensor 'w' has a malformed entry")
file_case("st-entry-not-object", "w.safetensors", safetensors({"w": 3}, bytes(4)), ValueError,
          r"tensor 'w' has a malformed entry")
file_case("st-metadata-not-object", "w.safetensors", safetensors({"__metadata__": 5}), ValueError,
          r"its __metadata__ is not an object")
file_case("st-metadata-not-str", "w.safetensors",
          safetensors({"__metadata__": {"step": 1},
                       "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
          ValueError, r"is not a readable \.safetensors file", calls=("load",))
file_case("st-garbage", "w.safetensors", garbage(256), ValueError, r"its header claims \d+ bytes")

file_case("st-duplicate-name", "w.safetensors",
          safetensors(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                      b'"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', bytes(8)),
          ValueError, r"'w'.*(twice|duplicate)", calls=("load",))

# --- damaged .npz ---
NPZ_BROKEN = CORRUPT + r"it is not a readable \.npz archive"
file_case("npz-cut-4", "w.npz", lambda d: valid("npz")[:4], ValueError, NPZ_BROKEN)
file_case("npz-cut-in-local-header", "w.npz", lambda d: valid("npz")[:20], ValueError, NPZ_BROKEN)
file_case("npz-cut-in-data", "w.npz", lambda d: valid("npz")[: len(valid("npz")) // 2], ValueError,
          NPZ_BROKEN)
file_case("npz-cut-in-zip-directory", "w.npz", lambda d: valid("npz")[:-30], ValueError, NPZ_BROKEN)
file_case("npz-cut-last-byte", "w.npz", lambda d: valid("npz")[:-1], ValueError, NPZ_BROKEN)
file_case("npz-garbage", "w.npz", garbage(256), ValueError, NPZ_BROKEN)
file_case("npz-member-claims-10**12", "w.npz",
          zip_of({"w.npy": npy_header((10**12,)) + bytes(16)}), ValueError,
          r"member 'w\.npy' of shape \(1000000000000,\) and dtype float32 needs 4000000000000 "
          r"bytes but has 16")
file_case("npz-member-short-data", "w.npz",
          zip_of({"layers.0.weight.npy": npy_header((3, 4)) + bytes(8)}), ValueError,
          r"member 'layers\.0\.weight\.npy' of shape \(3, 4\) .* needs 48 bytes but has 8")
file_case("npz-object-array", "w.npz", lambda d: pickled_object_npz(d / "unpickled"), ValueError,
          r"member 'w\.npy' holds Python objects")
file_case("npz-member-not-npy", "w.npz", zip_of({"w.txt": b"hello"}), ValueError,
          r"member 'w\.txt' is not a \.npy array")
file_case("npz-member-bad-magic", "w.npz", zip_of({"w.npy": b"NOT A NUMPY FILE" * 4}), ValueError,
          r"member 'w\.npy' has a bad \.npy header")
file_case("npz-member-bad-descr", "w.npz",
          zip_of({"w.npy": npy_header((2,)).replace(b"<f4", b"zz9") + bytes(8)}), ValueError,
          r"member 'w\.npy' has a bad \.npy header")
file_case("npz-duplicate-member", "w.npz",
          lambda d: zip_twice("w.npy", npy_header((1,)) + bytes(4), npy_header((2,)) + bytes(8)),
          ValueError, r"'w\.npy'.*(twice|duplicate)", calls=("load",))
file_case("npz-flipped-byte", "w.npz", lambda d: flipped_data_byte(), ValueError,
          r"(Bad CRC-32|fails its checksum).*'layers\.1\.bias\.npy'")

# --- .gguf (read only) ---
file_case("gguf-garbage", "w.gguf", b"GGUF" + bytes(range(200)), ValueError,
          r"Unsupported file extension for .*w\.gguf.*does not read \.gguf")

# --- empty files, .npy, extensions, missing files, folders: no damaged data is read, but
# they go through the same path; run in the isolated batches too ---
for ext in ("safetensors", "npz"):
    file_case(f"empty-{ext}", f"w.{ext}", b"", ValueError, rf"w\.{ext}' is empty \(0 bytes\)")
file_case("empty-npy", "w.npy", b"", ValueError, r"holds a single array")
file_case("garbage-npy", "w.npy", garbage(64), ValueError, r"holds a single array")
file_case("valid-npy", "w.npy", lambda d: (np.save(d / "w.npy", np.zeros(3)), (d / "w.npy").read_bytes())[1],
          ValueError, r"holds a single array")
for name in ("w.pt", "w.txt", "w", "w.NPZ", "w.safetensors.bak"):
    file_case(f"ext-{name}", name, lambda d: valid("safetensors"), ValueError,
              r"Unsupported file extension for .*Use '\.npz' or '\.safetensors'", isolated=False)

for call in READS:
    CASES.append(Case(f"missing-file-{call}", lambda d: [str(d / "nope.safetensors")], call,
                      FileNotFoundError, r"No such weights file: '.*nope\.safetensors'"))
    CASES.append(Case(f"missing-file-path-{call}", lambda d: [d / "nope.npz"], call,
                      FileNotFoundError, r"No such weights file"))

    def folder(d: Path) -> list:
        (d / "w.safetensors").mkdir()
        return [str(d / "w.safetensors")]

    CASES.append(Case(f"folder-{call}", folder, call, IsADirectoryError,
                      r"Expected a weights file, got a directory: '.*w\.safetensors'"))


# --- valid files that do not fit the model (in-process) ---
def saved(tree: dict, name: str = "w.safetensors") -> Callable[[Path], list]:
    def build(d: Path) -> list:
        funcnn.save(d / name, tree() if callable(tree) else tree)
        return [str(d / name)]

    return build


def model_params() -> dict:
    return dict(funcnn.tree_flatten(make_model().parameters()))


def edited(**changes) -> Callable[[], dict]:
    def tree() -> dict:
        p = model_params()
        for k, v in changes.items():
            k = k.replace("__", ".")
            if v is None:
                del p[k]
            else:
                p[k] = v
        return p

    return tree


for call in ("load_weights", "load_like"):
    cases = [
        Case(f"file-unknown-name-{call}", saved(edited(extra=mx.zeros(1))), call,
             funcnn.checkpoint.MismatchError, r"Received 1 parameters not in model: \nextra\."),
        Case(f"file-missing-name-{call}", saved(edited(layers__1__bias=None)), call,
             funcnn.checkpoint.MismatchError, r"Missing 1 parameters: \nlayers\.1\.bias\."),
        Case(f"file-wrong-shape-{call}", saved(edited(layers__0__weight=mx.zeros((4, 3)))), call,
             funcnn.checkpoint.MismatchError,
             r"Expected shape \(3, 4\) but received shape \(4, 3\) for parameter layers\.0\.weight"),
        Case(f"file-wrong-dtype-{call}", saved(edited(layers__0__bias=mx.zeros(3, mx.float16)), "w.npz"),
             call, funcnn.checkpoint.MismatchError,
             r"Expected dtype float32 but received dtype float16 for parameter layers\.0\.bias",
             {"check_dtype": True}),
        Case(f"file-everything-wrong-{call}",
             saved(edited(extra=mx.zeros(1), layers__1__bias=None, layers__0__weight=mx.zeros(2),
                          layers__0__bias=mx.zeros(3, mx.int32))),
             call, funcnn.checkpoint.MismatchError,
             r"(?s)Received 1 parameters not in model.*extra.*Missing 1 parameters.*layers\.1\.bias"
             r".*Expected shape \(3, 4\) but received shape \(2,\).*layers\.0\.weight"
             r".*Expected dtype float32 but received dtype int32.*layers\.0\.bias",
             {"check_dtype": True}),
    ]
    CASES += cases
# strict=False still rejects shapes
CASES.append(Case("file-wrong-shape-lenient", saved(edited(layers__0__weight=mx.zeros((4, 3)), extra=mx.ones(1))),
                  "load_like", funcnn.checkpoint.MismatchError,
                  r"1 problem with the weights:\nExpected shape \(3, 4\) but received shape \(4, 3\) "
                  r"for parameter layers\.0\.weight$", {"strict": False}))


# --- Python values (in-process) ---
def pairs(**changes) -> Callable[[Path], list]:
    return lambda d: [list(edited(**changes)().items())]


MISMATCH = funcnn.checkpoint.MismatchError
value_case("weights-unknown-name", "load_weights", pairs(extra=mx.zeros(1)), MISMATCH,
           r"Received 1 parameters not in model: \nextra\.")
value_case("weights-missing-name", "load_weights", pairs(layers__0__weight=None), MISMATCH,
           r"Missing 1 parameters: \nlayers\.0\.weight\.")
value_case("weights-duplicate-name", "load_weights",
           lambda d: [list(model_params().items()) + [("layers.0.bias", mx.ones(3))]], ValueError,
           r"Duplicate weight name 'layers\.0\.bias'")
value_case("weights-duplicate-name-lenient", "load_weights",
           lambda d: [[("layers.0.bias", mx.ones(3)), ("layers.0.bias", mx.ones(3))]], ValueError,
           r"Duplicate weight name 'layers\.0\.bias'", strict=False)
value_case("weights-wrong-shape", "load_weights", pairs(layers__1__weight=mx.zeros((3, 2))), MISMATCH,
           r"Expected shape \(2, 3\) but received shape \(3, 2\) for parameter layers\.1\.weight")
value_case("weights-wrong-dtype", "load_weights", pairs(layers__1__bias=mx.zeros(2, mx.bfloat16)),
           MISMATCH, r"Expected dtype float32 but received dtype bfloat16 for parameter layers\.1\.bias",
           check_dtype=True)
value_case("weights-not-array", "load_weights", pairs(layers__1__bias=[0.0, 0.0]), MISMATCH,
           r"Expected mx\.array but received <class 'list'> for parameter layers\.1\.bias")
value_case("weights-not-pairs", "load_weights", lambda d: [123], TypeError, r"int")
value_case("load-like-non-array-leaf", "load",
           lambda d: [saved({"a": mx.zeros(1)})(d)[0]], TypeError, r"'a' is a str",
           like={"a": "zeros"})
value_case("load-like-bare-array", "load", lambda d: [saved({"a": mx.zeros(1)})(d)[0]], TypeError,
           r"not a bare array", like=mx.zeros(1))
value_case("load-path-int", "load", lambda d: [123], TypeError, r"path must be a str or os\.PathLike, not int")
value_case("load-path-bytes", "load", lambda d: [b"w.npz"], TypeError, r"not bytes")


def target(name: str = "w.safetensors", tree: Any = None) -> Callable[[Path], list]:
    """An existing target file with known bytes, and the tree to save over it."""

    def build(d: Path) -> list:
        (d / name).write_bytes(b"the old checkpoint")
        return [str(d / name)] + ([tree() if callable(tree) else tree] if tree is not None else [])

    return build


value_case("save-non-array-leaf", "save", target(tree={"a": {"b": 3}}), TypeError,
           r"'a\.b' is a int")
value_case("save-string-leaf", "save", target(tree={"a": [mx.ones(1), "x"]}), TypeError, r"'a\.1' is a str")
value_case("save-bare-array", "save", target(tree=lambda: mx.zeros(2)), TypeError, r"not a bare array")
value_case("save-duplicate-names", "save", target(tree=lambda: {"a.b": mx.zeros(1), "a": {"b": mx.ones(1)}}),
           ValueError, r"both named 'a\.b'")
value_case("save-float64-safetensors", "save", target(tree=lambda: {"f": mx.ones(1), "d": mx.ones(2, mx.float64)}),
           ValueError, r"MLX cannot write float64 arrays to \.safetensors \(d\)")
value_case("save-reserved-name", "save", target(tree=lambda: {"__metadata__": mx.ones(1)}), ValueError,
           r"'__metadata__' is reserved")
value_case("save-metadata-npz", "save", target("w.npz", tree=lambda: {"a": mx.ones(1)}), ValueError,
           r"Metadata can only be stored in \.safetensors files, not in '.*w\.npz'", names_file=True,
           metadata={"a": "b"})
value_case("save-metadata-int-value", "save", target(tree=lambda: {"a": mx.ones(1)}), TypeError,
           r"metadata must map str to str; got 'step': 3 \(str -> int\)", metadata={"step": 3})
value_case("save-metadata-int-key", "save", target(tree=lambda: {"a": mx.ones(1)}), TypeError,
           r"metadata must map str to str", metadata={1: "x"})
value_case("save-metadata-not-dict", "save", target(tree=lambda: {"a": mx.ones(1)}), TypeError,
           r"metadata must be a dict of str to str, not list", metadata=["a"])
value_case("save-path-int", "save", lambda d: [123, {"a": mx.ones(1)}], TypeError,
           r"path must be a str or os\.PathLike, not int")
value_case("save-weights-path-int", "save_weights", lambda d: [123], TypeError, r"int")


def f64_model(d: Path) -> list:
    m = make_model()
    m.layers[1].bias = m.layers[1].bias.astype(mx.float64)
    return target()(d) + [m]


value_case("save-weights-float64-safetensors", "save_weights", f64_model, ValueError,
           r"cannot write float64 arrays to \.safetensors \(layers\.1\.bias\)")

for call, extra in (("save", [{"a": mx.ones(1)}]), ("save_weights", [])):
    for name in ("w.pt", "w.txt", "w", "w.NPZ", "w.npy"):
        CASES.append(Case(f"{call}-ext-{name}", lambda d, n=name, e=extra: target(n)(d) + e, call,
                          ValueError, r"Unsupported file extension for .*Use '\.npz' or '\.safetensors'"))

    def into_folder(d: Path, e=extra) -> list:
        (d / "w.npz").mkdir()
        (d / "w.npz" / "inside").write_bytes(b"keep")
        return [str(d / "w.npz")] + e

    CASES.append(Case(f"{call}-folder", into_folder, call, IsADirectoryError,
                      r"Cannot save weights over a directory: '.*w\.npz'"))
    CASES.append(Case(f"{call}-missing-folder", lambda d, e=extra: [str(d / "no" / "w.npz")] + e, call,
                      FileNotFoundError, r"The directory to save into does not exist: '.*/no'",
                      names_file=False))


# ----------------------------------------------------------------------
# Running the catalogue
# ----------------------------------------------------------------------

BATCH = 5  # at most this many damaged files per interpreter


def _run_isolated(specs: list[dict]) -> list[dict]:
    try:
        return run_batch(specs)
    except Exception as err:  # a crash or a hang: run each alone to tell which
        if len(specs) == 1:
            return [{"type": f"crashed: {str(err)[:300]}", "mro": [], "message": "", "unchanged": None}]
        return [r for spec in specs for r in _run_isolated([spec])]


@pytest.fixture(scope="module")
def isolated_results(tmp_path_factory) -> dict:
    """Results of every isolated case, run in batches of ``BATCH``, two interpreters at a time."""
    base = tmp_path_factory.mktemp("bad_inputs")
    ids, specs, args = [], [], {}
    for case in CASES:
        if case.isolated:
            d = base / case.id
            d.mkdir()
            args[case.id] = case.build(d)
            ids.append(case.id)
            specs.append({"call": case.call, "args": args[case.id], "kwargs": case.kwargs,
                          "directory": str(d)})
    # Cases expected to fail (a crash, say) run alone, the others BATCH at a time.
    alone = {i for i, c in enumerate(c for c in CASES if c.isolated) if c.xfail}
    rest = [s for i, s in enumerate(specs) if i not in alone]
    order = [i for i in range(len(specs)) if i not in alone] + sorted(alone)
    ids = [ids[i] for i in order]
    batches = [rest[i : i + BATCH] for i in range(0, len(rest), BATCH)]
    batches += [[specs[i]] for i in sorted(alone)]
    with ThreadPoolExecutor(2) as pool:
        results = [r for batch in pool.map(_run_isolated, batches) for r in batch]
    return {i: (r, args[i]) for i, r in zip(ids, results)}


def _params(case: Case) -> Any:
    marks = [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_params(c) for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, request) -> None:
    if case.isolated:
        result, args = request.getfixturevalue("isolated_results")[case.id]
    else:
        args = case.build(tmp_path)
        result = execute(case.call, args, case.kwargs, str(tmp_path))
    assert result["type"] == case.exc.__name__, result
    assert re.search(case.match, result["message"]), result["message"]
    assert result["unchanged"] is True, "the call changed the folder or the model"
    if case.names_file:
        assert os.path.basename(os.fspath(args[0])) in result["message"], result["message"]


def test_catalogue_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_mlx_nn_is_lazy(tmp_path: Path) -> None:
    """mlx.nn accepts an .npz whose member data is cut short; the model fails later.

    funcnn's ``load_weights`` refuses the same file (``npz-member-short-data``).
    """
    path = tmp_path / "short.npz"
    params = dict(funcnn.tree_flatten(make_model().parameters()))
    members = {f"{k}.npy": npy_header(tuple(v.shape)) + bytes(4 * v.size) for k, v in params.items()}
    members["layers.0.weight.npy"] = npy_header((3, 4)) + bytes(8)  # 8 of 48 bytes
    path.write_bytes(zip_of(members))
    code = f"""
import json, sys
sys.path.insert(0, ".")
import funcnn, _subproc
import mlx.core as mx, mlx.nn as nn
out = {{}}
m = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
try:
    m.load_weights({str(path)!r})
    out["load"] = "ok"
except Exception as e:
    out["load"] = type(e).__name__
try:
    mx.eval(m.parameters())
    out["eval"] = "ok"
except Exception as e:
    out["eval"] = type(e).__name__ + ": " + str(e)
f = _subproc.make_model()
try:
    f.load_weights({str(path)!r})
    out["funcnn"] = "ok"
except Exception as e:
    out["funcnn"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"""
    out = run_script(code)
    assert out["load"] == "ok"  # mlx.nn: no error when loading ...
    assert out["eval"] != "ok"  # ... the damage surfaces at the first evaluation
    assert out["funcnn"].startswith("ValueError") and "needs 48 bytes but has 8" in out["funcnn"]


def test_object_npz_would_run_code_if_unpickled(tmp_path: Path) -> None:
    """The ``npz-object-array`` file is live: numpy with allow_pickle creates the marker."""
    path = tmp_path / "w.npz"
    path.write_bytes(pickled_object_npz(tmp_path / "unpickled"))
    np.load(path, allow_pickle=True)["w"]
    assert (tmp_path / "unpickled").exists()
