"""``funcnn.save``/``funcnn.load`` and ``Module.save_weights``/``load_weights`` on valid files.

Round trips of every dtype bit for bit (special values included), metadata,
templates (``like``) and their errors, optimizer states, atomic writes (a
failing write or rename leaves the old file and no temporary file), file
modes, and that loads return evaluated arrays.  Damaged files and the full
catalogue of bad inputs are in ``test_bad_inputs.py``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import funcnn  # before mlx.core: funcnn picks its BLAS at import

import mlx.core as mx  # noqa: I001
import mlx.nn as mnn
import mlx.optimizers as mopt
import numpy as np
import pytest

import funcnn.checkpoint as ck
import funcnn.optimizers as fopt
from _subproc import bits, make_model, snapshot_dir, tree_bits

MismatchError = ck.MismatchError

# ----------------------------------------------------------------------
# Every dtype, special values included
# ----------------------------------------------------------------------

# Bit patterns: +0, -0, smallest and largest subnormal, smallest normal, largest
# finite, +inf, -inf, quiet nan, nan with a payload, -nan, 1, 1/3.
FLOAT_BITS = {
    mx.float16: (mx.uint16, [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00,
                             0x7E00, 0x7E01, 0xFE00, 0x3C00, 0x3555]),
    mx.bfloat16: (mx.uint16, [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x7F7F, 0x7F80, 0xFF80,
                              0x7FC0, 0x7FC1, 0xFFC0, 0x3F80, 0x3EAB]),
    mx.float32: (mx.uint32, [0x00000000, 0x80000000, 0x00000001, 0x007FFFFF, 0x00800000,
                             0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7FC00001,
                             0xFFC00000, 0x3F800000, 0x3EAAAAAB]),
    mx.float64: (mx.uint64, [0, 1 << 63, 1, (1 << 52) - 1, 1 << 52, 0x7FEFFFFFFFFFFFFF,
                             0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000,
                             0x7FF8000000000001, 0xFFF8000000000000, 0x3FF0000000000000,
                             0x3FD5555555555555]),
}
INT_DTYPES = [mx.uint8, mx.uint16, mx.uint32, mx.uint64, mx.int8, mx.int16, mx.int32, mx.int64]
ALL_DTYPES = [mx.bool_, *INT_DTYPES, mx.float16, mx.bfloat16, mx.float32, mx.complex64, mx.float64]


def special(dtype) -> mx.array:
    """A 1-D array of ``dtype`` with its extreme and special values."""
    if dtype == mx.bool_:
        return mx.array([True, False, True])
    if dtype in INT_DTYPES:
        info = np.iinfo(np.dtype(str(dtype).rpartition(".")[2]))
        vals = [info.min, info.max, 0, 1, info.max - 1] + ([-1] if info.min < 0 else [])
        return mx.array(np.array(vals, dtype=info.dtype))
    if dtype == mx.complex64:  # pairs of float32 patterns as (real, imag)
        return mx.array(FLOAT_BITS[mx.float32][1] + [0x40490FDB], mx.uint32).view(mx.complex64)
    uint, patterns = FLOAT_BITS[dtype]
    return mx.array(np.array(patterns, dtype=np.dtype(str(uint).rpartition(".")[2]))).view(dtype)


def dtype_tree(dtypes) -> dict:
    """Per dtype: its special values, a 2-D block, a 0-d scalar and an empty array."""
    tree = {}
    for t in dtypes:
        v = special(t)
        n = v.size - v.size % 2
        tree[str(t).rpartition(".")[2]] = {
            "special": v,
            "block": v[:n].reshape(2, n // 2),
            "scalar": v[1],
            "empty": mx.zeros((0, 3), t),
        }
    return tree


def dtypes_for(ext: str) -> list:
    return ALL_DTYPES if ext == "npz" else [t for t in ALL_DTYPES if t != mx.float64]


def test_bits_is_bitwise() -> None:
    # The comparison used throughout tells apart what == cannot (or wrongly equates).
    f32 = FLOAT_BITS[mx.float32][1]
    as_f32 = lambda *p: mx.array(p, mx.uint32).view(mx.float32)  # noqa: E731
    assert bits(as_f32(f32[0])) != bits(as_f32(f32[1]))  # +0 vs -0 (== says equal)
    assert bits(as_f32(f32[8])) != bits(as_f32(f32[9]))  # nan payloads
    assert bits(as_f32(f32[8])) == bits(as_f32(f32[8]))  # nan == itself bitwise
    bf = mx.array([0x7FC0, 0x7FC1], mx.uint16).view(mx.bfloat16)
    assert bits(bf[0]) != bits(bf[1])
    assert bits(mx.zeros(2, mx.int32)) != bits(mx.zeros(2, mx.uint32))  # dtype counts
    assert bits(mx.zeros((2, 1))) != bits(mx.zeros((1, 2)))  # shape counts
    for t in ALL_DTYPES:  # the special values really are what they say
        assert special(t).dtype == t
    assert bits(special(mx.float16))[2][2] == 0x0001  # a subnormal survived construction


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_every_dtype_round_trips_bit_exactly_with_save_load(tmp_path: Path, ext: str) -> None:
    tree = dtype_tree(dtypes_for(ext))
    path = tmp_path / f"all.{ext}"
    funcnn.save(path, tree)
    # Without a template, dict order is MLX's (mx.load returns a hash map), not the file's.
    assert sorted(tree_bits(funcnn.load(path))) == sorted(tree_bits(tree))
    like = funcnn.tree_map(lambda x: mx.zeros_like(x), tree)
    assert tree_bits(funcnn.load(path, like=like, check_dtype=True)) == tree_bits(tree)
    # What MLX itself reads from the file is the same too.
    assert sorted(tree_bits(funcnn.tree_unflatten(list(mx.load(str(path)).items())))) == sorted(tree_bits(tree))


class Holder(funcnn.Module):
    def __init__(self, tree: dict) -> None:
        super().__init__()
        for k, v in tree.items():
            setattr(self, k, v)


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_every_dtype_round_trips_bit_exactly_with_module_weights(tmp_path: Path, ext: str) -> None:
    tree = dtype_tree(dtypes_for(ext))
    src = Holder(tree)
    path = tmp_path / f"all.{ext}"
    src.save_weights(path)
    dst = Holder(funcnn.tree_map(lambda x: mx.zeros_like(x), tree))
    assert tree_bits(dst) != tree_bits(src)
    assert dst.load_weights(path, check_dtype=True) is dst
    assert tree_bits(dst) == tree_bits(src) == tree_bits(tree)


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_files_interchange_with_mlx_nn(tmp_path: Path, ext: str) -> None:
    mx.random.seed(3)
    f = funcnn.Sequential(funcnn.Linear(4, 3), funcnn.LayerNorm(3))
    m = mnn.Sequential(mnn.Linear(4, 3), mnn.LayerNorm(3))
    f.save_weights(tmp_path / f"f.{ext}")
    m.load_weights(str(tmp_path / f"f.{ext}"))
    assert tree_bits(m.parameters()) == tree_bits(f)
    m.layers[0].weight = m.layers[0].weight + 1
    m.save_weights(str(tmp_path / f"m.{ext}"))
    f.load_weights(tmp_path / f"m.{ext}")
    assert tree_bits(f) == tree_bits(m.parameters())


@pytest.mark.parametrize("api", ["save", "save_weights"])
def test_float64_to_safetensors_writes_nothing(tmp_path: Path, api: str) -> None:
    tree = {"f": mx.ones(2), "d": mx.ones(2, mx.float64)}
    new, old = tmp_path / "new.safetensors", tmp_path / "old.safetensors"
    old.write_bytes(b"old")
    for path in (new, old):
        with pytest.raises(ValueError, match=r"float64 .*\(d\).*\.npz"):
            funcnn.save(path, tree) if api == "save" else Holder(tree).save_weights(path)
    assert snapshot_dir(str(tmp_path)) == {"old.safetensors": (b"old", os.stat(old).st_mode)}


# ----------------------------------------------------------------------
# Metadata
# ----------------------------------------------------------------------


def test_metadata_round_trips(tmp_path: Path) -> None:
    meta = {"step": "100", "config": '{"lr": 0.001}', "unicode": "ü✓", "empty": ""}
    path = tmp_path / "m.safetensors"
    funcnn.save(path, {"w": mx.ones(2)}, metadata=meta)
    tree, got = funcnn.load(path, return_metadata=True)
    assert got == meta and tree_bits(tree) == tree_bits({"w": mx.ones(2)})
    _, got = funcnn.load(path, like={"w": mx.zeros(2)}, return_metadata=True)
    assert got == meta
    funcnn.save(path, {"w": mx.ones(2)})  # no metadata: none read back
    assert funcnn.load(path, return_metadata=True)[1] == {}
    funcnn.save(tmp_path / "m.npz", {"w": mx.ones(2)})
    assert funcnn.load(tmp_path / "m.npz", return_metadata=True)[1] == {}


@pytest.mark.parametrize(
    "name, meta, exc",
    [
        ("m.npz", {"a": "b"}, ValueError),
        ("m.npz", {}, ValueError),  # metadata given at all, even empty
        ("m.safetensors", {"a": 1}, TypeError),
        ("m.safetensors", {1: "a"}, TypeError),
        ("m.safetensors", {"a": None}, TypeError),
        ("m.safetensors", [("a", "b")], TypeError),
        ("m.safetensors", "a=b", TypeError),
    ],
)
def test_bad_metadata_writes_nothing(tmp_path: Path, name: str, meta, exc) -> None:
    (tmp_path / "keep").write_bytes(b"x")
    (tmp_path / name).write_bytes(b"old")
    before = snapshot_dir(str(tmp_path))
    with pytest.raises(exc, match="etadata"):
        funcnn.save(tmp_path / name, {"w": mx.ones(1)}, metadata=meta)
    (tmp_path / name).unlink()
    with pytest.raises(exc, match="etadata"):
        funcnn.save(tmp_path / name, {"w": mx.ones(1)}, metadata=meta)
    assert not (tmp_path / name).exists()
    (tmp_path / name).write_bytes(b"old")
    os.chmod(tmp_path / name, before[name][1])
    assert snapshot_dir(str(tmp_path)) == before


# ----------------------------------------------------------------------
# Trees and templates
# ----------------------------------------------------------------------


def nested() -> dict:
    return {
        "enc": {"w": mx.arange(6.0).reshape(2, 3), "layers": [mx.ones(2), {"b": mx.zeros(1, mx.int32)}]},
        "head": [mx.array(3, mx.uint64)],
    }


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_load_without_like_rebuilds_dicts_and_lists(tmp_path: Path, ext: str) -> None:
    funcnn.save(tmp_path / f"t.{ext}", nested())
    tree = funcnn.load(tmp_path / f"t.{ext}")
    assert type(tree) is dict and type(tree["enc"]["layers"]) is list and type(tree["head"]) is list
    assert sorted(tree_bits(tree)) == sorted(tree_bits(nested()))
    assert sorted(mx.load(str(tmp_path / f"t.{ext}"))) == sorted(k for k, _ in funcnn.tree_flatten(nested()))


def test_load_empty_tree(tmp_path: Path) -> None:
    funcnn.save(tmp_path / "e.safetensors", {})
    assert funcnn.load(tmp_path / "e.safetensors") == {}
    assert funcnn.load(tmp_path / "e.safetensors", like={}) == {}


def test_load_with_like_returns_likes_structure(tmp_path: Path) -> None:
    funcnn.save(tmp_path / "t.safetensors", nested())
    like = {
        "head": (mx.zeros((), mx.uint64),),  # a tuple, and a different key order
        "enc": {"layers": [mx.zeros(2), {"b": mx.zeros(1, mx.int32)}], "w": mx.zeros((2, 3))},
        "skipped": None,
    }
    tree = funcnn.load(tmp_path / "t.safetensors", like=like, check_dtype=True)
    assert list(tree) == ["head", "enc", "skipped"] and list(tree["enc"]) == ["layers", "w"]
    assert type(tree["head"]) is tuple and tree["skipped"] is None
    assert tree_bits(tree["enc"]) == tree_bits(
        {"layers": nested()["enc"]["layers"], "w": nested()["enc"]["w"]}
    )
    assert bits(tree["head"][0]) == bits(mx.array(3, mx.uint64))


@pytest.mark.parametrize("template", ["funcnn", "mlx.nn"])
def test_load_with_a_module_template(tmp_path: Path, template: str) -> None:
    src = make_model()
    src.save_weights(tmp_path / "w.safetensors")
    nn = funcnn if template == "funcnn" else mnn
    mx.random.seed(7)
    like = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    before = tree_bits(like.parameters())
    tree = funcnn.load(tmp_path / "w.safetensors", like=like)
    assert type(tree) is dict and type(tree["layers"]) is list and type(tree["layers"][0]) is dict
    assert [k for k, _ in funcnn.tree_flatten(tree)] == [k for k, _ in funcnn.tree_flatten(like.parameters())]
    assert tree_bits(tree) == tree_bits(src)
    assert tree_bits(like.parameters()) == before  # the template is not modified
    with pytest.raises(MismatchError, match=r"layers\.1\.weight"):
        funcnn.load(tmp_path / "w.safetensors", like=nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 5)))


def test_mismatch_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    funcnn.save(path, {
        "enc": {"w": mx.zeros((2, 3)), "b": mx.zeros(3, mx.float16), "extra": mx.zeros(1)},
        "layers": [mx.zeros(4)],
        "stray": mx.zeros(1),
    })
    like = {
        "enc": {"w": mx.zeros((3, 2)), "b": mx.zeros(3), "gone": mx.zeros(1)},
        "layers": [mx.zeros(4), mx.zeros(5)],
    }
    with pytest.raises(MismatchError) as info:
        funcnn.load(path, like=like, check_dtype=True)
    err = info.value
    assert isinstance(err, ValueError)
    assert [(p.kind, p.path) for p in err.problems] == [
        ("unexpected", "enc.extra"), ("unexpected", "stray"),
        ("missing", "enc.gone"), ("missing", "layers.1"),
        ("shape", "enc.w"), ("dtype", "enc.b"),
    ]
    msg = str(err)
    assert msg.startswith(f"{path}: 6 problems with the weights:\n")
    for fragment in [
        "Received 2 parameters not in model: \nenc.extra,\nstray.",
        "Missing 2 parameters: \nenc.gone,\nlayers.1.",
        "Expected shape (3, 2) but received shape (2, 3) for parameter enc.w",
        "Expected dtype float32 but received dtype float16 for parameter enc.b",
    ]:
        assert fragment in msg
    # Without check_dtype the dtype is not a problem.
    with pytest.raises(MismatchError) as info:
        funcnn.load(path, like=like)
    assert "dtype" not in {p.kind for p in info.value.problems} and len(info.value.problems) == 5


def test_not_strict_ignores_names_but_not_shapes(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    funcnn.save(path, {"a": mx.ones(2), "extra": mx.ones(1)})
    like = {"a": mx.zeros(2), "kept": mx.full((3,), 5.0)}
    tree = funcnn.load(path, like=like, strict=False)
    assert tree_bits(tree) == tree_bits({"a": mx.ones(2), "kept": mx.full((3,), 5.0)})
    assert tree["kept"] is like["kept"]
    with pytest.raises(MismatchError, match="1 problem with the weights") as info:
        funcnn.load(path, like={"a": mx.zeros(3)}, strict=False)
    assert [(p.kind, p.path, p.expected, p.received) for p in info.value.problems] == [
        ("shape", "a", (3,), (2,))
    ]
    with pytest.raises(MismatchError, match="float16"):
        funcnn.load(path, like={"a": mx.zeros(2, mx.float16)}, strict=False, check_dtype=True)


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_none_leaves_are_skipped_by_save_and_kept_by_load(tmp_path: Path, ext: str) -> None:
    tree = {"a": mx.ones(1), "b": None, "c": [None, mx.zeros(2)], "d": {"e": None}}
    path = tmp_path / f"n.{ext}"
    funcnn.save(path, tree)
    assert sorted(mx.load(str(path))) == ["a", "c.1"]
    back = funcnn.load(path, like=tree)
    assert back["b"] is None and back["c"][0] is None and back["d"] == {"e": None}
    assert tree_bits(back) == tree_bits(tree)


def test_tree_errors_name_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    cases = [
        ({"a": {"b": 3}}, TypeError, r"'a\.b' is a int"),
        ({"a": [mx.ones(1), np.ones(2)]}, TypeError, r"'a\.1' is a ndarray"),
        ({"a": {"b": "s"}}, TypeError, r"'a\.b' is a str"),
        (mx.ones(2), TypeError, r"bare array"),
        ({"a.b": mx.ones(1), "a": {"b": mx.zeros(1)}}, ValueError, r"both named 'a\.b'"),
    ]
    for tree, exc, match in cases:
        with pytest.raises(exc, match=match):
            funcnn.save(path, tree)
        assert os.listdir(tmp_path) == []
    funcnn.save(path, {"a": mx.ones(1)})
    for like, exc, match in cases:
        with pytest.raises(exc, match=match):
            funcnn.load(path, like=like)


# ----------------------------------------------------------------------
# Optimizer states
# ----------------------------------------------------------------------


def grads_of(params: dict) -> dict:
    def loss(p):
        return (mx.tanh(mx.ones((2, 4)) @ p["w"] + p["b"]) ** 2).sum()

    return mx.grad(loss)(params)


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_funcnn_optimizer_state_round_trips_and_resumes(tmp_path: Path, ext: str) -> None:
    params = {"w": mx.full((4, 3), 0.1), "b": mx.zeros(3)}
    opt = fopt.adam(1e-2)
    state = opt.init(params)
    for _ in range(3):
        params, state = opt.update(grads_of(params), state, params)
    path = tmp_path / f"opt.{ext}"
    funcnn.save(path, state)
    template = opt.init({"w": mx.zeros((4, 3)), "b": mx.zeros(3)})
    loaded = funcnn.load(path, like=template, check_dtype=True)
    assert tree_bits(loaded) == tree_bits(state)
    assert loaded["step"].dtype == mx.uint64 and loaded["step"].item() == 3
    # Resuming from the file follows the same trajectory, bit for bit.
    a = opt.update(grads_of(params), state, params)
    b = opt.update(grads_of(params), loaded, params)
    assert tree_bits(a) == tree_bits(b)


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_mlx_optimizer_state_round_trips_and_resumes(tmp_path: Path, ext: str) -> None:
    mx.random.seed(0)
    model = mnn.Linear(4, 3)
    opt = mopt.Adam(1e-2)
    loss_and_grad = mnn.value_and_grad(model, lambda x: (model(x) ** 2).sum())
    for _ in range(3):
        opt.update(model, loss_and_grad(mx.ones((2, 4)))[1])
    mx.eval(model.parameters(), opt.state)
    path = tmp_path / f"opt.{ext}"
    funcnn.save(path, opt.state)
    loaded = funcnn.load(path, like=opt.state, check_dtype=True)
    assert tree_bits(loaded) == tree_bits(opt.state)
    assert sorted(loaded) == sorted(opt.state) and loaded["step"].item() == 3
    # A fresh optimizer given the loaded state continues exactly as the original.
    resumed = mopt.Adam(1e-2)
    resumed.state = loaded
    g = loss_and_grad(mx.ones((2, 4)))[1]
    p1 = opt.apply_gradients(g, model.parameters())
    p2 = resumed.apply_gradients(g, model.parameters())
    assert tree_bits(p1) == tree_bits(p2)


# ----------------------------------------------------------------------
# Atomic writes, modes, targets
# ----------------------------------------------------------------------


def _write(api: str, path: Path) -> None:
    if api == "save":
        funcnn.save(path, {"w": mx.arange(4.0)})
    else:
        make_model().save_weights(path)


def _enospc(f, *args, **kwargs):
    f.write(b"PARTIAL" * 100)
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


@pytest.mark.parametrize("api", ["save", "save_weights"])
@pytest.mark.parametrize("ext", ["safetensors", "npz"])
@pytest.mark.parametrize("failure", ["write", "fsync", "replace"])
@pytest.mark.parametrize("existing", [True, False])
def test_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch, api: str, ext: str, failure: str, existing: bool
) -> None:
    path = tmp_path / f"w.{ext}"
    if existing:
        path.write_bytes(b"the old checkpoint")
        os.chmod(path, 0o640)
    before = snapshot_dir(str(tmp_path))
    if failure == "write":
        monkeypatch.setattr(mx, "save_safetensors" if ext == "safetensors" else "savez", _enospc)
        expected = OSError
    else:
        monkeypatch.setattr(ck.os, failure, _fail)
        expected = PermissionError
    with pytest.raises(expected) as info:
        _write(api, path)
    assert info.value.errno == (errno.ENOSPC if failure == "write" else errno.EACCES)
    monkeypatch.undo()
    assert snapshot_dir(str(tmp_path)) == before  # old bytes and mode; no .w.*.tmp left
    _write(api, path)  # and the next save works
    assert sorted(os.listdir(tmp_path)) == [f"w.{ext}"]


@pytest.mark.parametrize("api", ["save", "save_weights"])
@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_successful_save_replaces_the_file_and_leaves_no_temp_file(
    tmp_path: Path, api: str, ext: str
) -> None:
    path = tmp_path / f"w.{ext}"
    path.write_bytes(b"the old checkpoint")
    _write(api, path)
    _write(api, path)
    assert sorted(os.listdir(tmp_path)) == [f"w.{ext}"]
    assert path.read_bytes() != b"the old checkpoint"
    assert len(funcnn.load(path, return_metadata=True)[0]) > 0


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_file_mode_follows_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain", "wb"):
            pass
        funcnn.save(tmp_path / "a.safetensors", {"w": mx.ones(1)})
        make_model().save_weights(tmp_path / "b.npz")
    finally:
        os.umask(old)
    want = stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    assert want == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(tmp_path / "a.safetensors").st_mode) == want
    assert stat.S_IMODE(os.stat(tmp_path / "b.npz").st_mode) == want


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o600])
def test_replaced_file_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    for name in ("a.safetensors", "b.npz"):
        (tmp_path / name).write_bytes(b"old")
        os.chmod(tmp_path / name, mode)
    funcnn.save(tmp_path / "a.safetensors", {"w": mx.ones(1)})
    make_model().save_weights(tmp_path / "b.npz")
    for name in ("a.safetensors", "b.npz"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode
        assert (tmp_path / name).read_bytes() != b"old"


@pytest.mark.parametrize("api", ["save", "save_weights"])
def test_bad_targets_write_nothing(tmp_path: Path, api: str) -> None:
    (tmp_path / "d.npz").mkdir()
    (tmp_path / "d.npz" / "inside").write_bytes(b"keep")
    before = snapshot_dir(str(tmp_path))
    with pytest.raises(IsADirectoryError, match="d.npz"):
        _write(api, tmp_path / "d.npz")
    with pytest.raises(FileNotFoundError, match="missing"):
        _write(api, tmp_path / "missing" / "w.npz")
    assert snapshot_dir(str(tmp_path)) == before


# ----------------------------------------------------------------------
# load_weights: all or nothing
# ----------------------------------------------------------------------


def model_weights(**changes) -> dict:
    w = dict(funcnn.tree_flatten(make_model().parameters()))
    w = {k: v + 1 for k, v in w.items()}  # differ from the model's, so a load would show
    for k, v in changes.items():
        k = k.replace("__", ".")
        if v is None:
            del w[k]
        else:
            w[k] = v
    return w


PROBLEMS = {
    "unexpected": (dict(extra=mx.zeros(1)), {}),
    "missing": (dict(layers__1__bias=None), {}),
    "shape": (dict(layers__0__weight=mx.zeros((4, 3))), {}),
    "dtype": (dict(layers__0__bias=mx.zeros(3, mx.float16)), {"check_dtype": True}),
    "all": (
        dict(extra=mx.zeros(1), layers__1__bias=None, layers__0__weight=mx.zeros(2),
             layers__0__bias=mx.zeros(3, mx.bfloat16)),
        {"check_dtype": True},
    ),
}


@pytest.mark.parametrize("source", ["safetensors", "npz", "list", "dict"])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_failed_load_weights_leaves_the_model_as_it_was(tmp_path: Path, source: str, problem: str) -> None:
    changes, kwargs = PROBLEMS[problem]
    weights = model_weights(**changes)
    if source in ("safetensors", "npz"):
        arg = tmp_path / f"w.{source}"
        funcnn.save(arg, weights)
    else:
        arg = list(weights.items()) if source == "list" else weights
    model = make_model()
    before = tree_bits(model)
    with pytest.raises(MismatchError) as info:
        model.load_weights(arg, **kwargs)
    assert tree_bits(model) == before
    kinds = {p.kind for p in info.value.problems}
    assert kinds == ({"unexpected", "missing", "shape", "dtype"} if problem == "all" else {problem})
    # The same weights, made right, do load (so the comparison above could fail).
    good = model_weights()
    model.load_weights(list(good.items()), **kwargs)
    assert tree_bits(model) != before


def test_check_dtype_catches_float16_into_float32(tmp_path: Path) -> None:
    weights = {k: v.astype(mx.float16) for k, v in model_weights().items()}
    path = tmp_path / "half.safetensors"
    funcnn.save(path, weights)
    model = make_model()
    before = tree_bits(model)
    with pytest.raises(MismatchError, match="Expected dtype float32 but received dtype float16") as info:
        model.load_weights(path, check_dtype=True)
    assert len(info.value.problems) == 4 and tree_bits(model) == before
    # Default: like mlx.nn, dtypes are not checked and the loaded dtype is kept.
    assert model.load_weights(path) is model
    m = mnn.Sequential(mnn.Linear(4, 3), mnn.Linear(3, 2))
    m.load_weights(str(path))
    assert tree_bits(model) == tree_bits(m.parameters()) == tree_bits(funcnn.tree_unflatten(list(weights.items())))
    assert model.layers[0].weight.dtype == mx.float16


# ----------------------------------------------------------------------
# Loads return evaluated arrays
# ----------------------------------------------------------------------


def _clobber(path: Path) -> None:
    # Truncate in place: deleting is not enough, since a lazy .npz load keeps
    # the file open and could still read an unlinked file.
    with open(path, "r+b") as f:
        f.truncate(0)


def big_tree() -> dict:
    # Megabytes, so that no reader buffer already holds the data.
    return {"a": mx.arange(float(1 << 20)), "b": {"c": mx.ones((3, 3), mx.bfloat16)}}


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_load_returns_evaluated_arrays(tmp_path: Path, ext: str) -> None:
    tree = big_tree()
    path = tmp_path / f"l.{ext}"
    funcnn.save(path, tree)
    loaded = funcnn.load(path)
    _clobber(path)
    os.remove(path)
    assert sorted(tree_bits(loaded)) == sorted(tree_bits(tree))


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_load_weights_file_is_evaluated(tmp_path: Path, ext: str) -> None:
    src = Holder(big_tree())
    path = tmp_path / f"l.{ext}"
    src.save_weights(path)
    dst = Holder(funcnn.tree_map(mx.zeros_like, big_tree()))
    dst.load_weights(path)
    _clobber(path)
    os.remove(path)
    assert tree_bits(dst) == tree_bits(src)


# ----------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------


def test_pathlib_and_str_paths_everywhere(tmp_path: Path) -> None:
    tree = {"w": mx.arange(3.0)}
    for p in (tmp_path / "a.safetensors", str(tmp_path / "b.npz")):
        funcnn.save(p, tree)
        assert tree_bits(funcnn.load(p, like=tree)) == tree_bits(tree)
        assert sorted(tree_bits(ck.read_arrays(p)[0])) == sorted(tree_bits(tree))
        ck.write_arrays(p, tree)
        m = make_model()
        m.save_weights(p)
        make_model().load_weights(p)
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors", "b.npz"]


@pytest.mark.parametrize("bad", [123, None, b"w.npz", ["w.npz"], 1.5])
def test_non_path_types_are_type_errors(tmp_path: Path, monkeypatch, bad) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may appear even relative to the working directory
    tree = {"w": mx.ones(1)}
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        funcnn.save(bad, tree)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        funcnn.load(bad)
    with pytest.raises(TypeError):
        ck.write_arrays(bad, tree)
    with pytest.raises(TypeError):
        make_model().save_weights(bad)
    if not isinstance(bad, list):  # a list is a weights list
        with pytest.raises(TypeError):
            make_model().load_weights(bad)
    assert os.listdir(tmp_path) == []
