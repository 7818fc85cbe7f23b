"""Which public name is documented on which API page, derived from the modules' ``__all__``.

Each public name gets its full entry once, on the first page (in :data:`PAGES` order)
whose module exports that very object; every later page that exports it links there.
So ``funcnn.Conv2d`` links to ``funcnn.layers.convolution.Conv2d``, grouped by family,
and a new name in any ``__all__`` lands in the docs without editing them.  Shared by
``docs/conf.py`` (which writes the page stubs) and ``tests/test_docs.py``.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

# Leaf pages first, so that objects find their home in their family module.
PAGES: tuple[str, ...] = (
    "funcnn.layers.base",
    *(
        f"funcnn.layers.{family}"
        for family in (
            "activations", "containers", "convolution", "convolution_transpose", "distributed",
            "dropout", "embedding", "linear", "normalization", "pooling", "positional_encoding",
            "quantized", "recurrent", "transformer", "upsample",
        )
    ),
    "funcnn.init",
    "funcnn.losses",
    "funcnn.utils",
    *(
        f"funcnn.functional.{family}"
        for family in (
            "activation_layers", "activations", "containers", "convolution",
            "convolution_transpose", "distributed", "dropout", "embedding", "linear",
            "normalization", "pooling", "positional_encoding", "quantized", "recurrent",
            "transformer", "upsample", "lora", "losses",
        )
    ),
    "funcnn.tree",
    "funcnn.transforms",
    "funcnn.optimizers",
    "funcnn.parallel",
    "funcnn.lora",
    "funcnn.checkpoint",
    "funcnn.summary",
    "funcnn.functional",
    "funcnn.layers",
    "funcnn",
)  # fmt: skip

# The modules the API reference promises to cover (the test checks each ``__all__``).
LISTED: tuple[str, ...] = (
    "funcnn", "funcnn.functional", "funcnn.transforms", "funcnn.optimizers", "funcnn.tree",
    "funcnn.init", "funcnn.losses", "funcnn.utils", "funcnn.parallel", "funcnn.lora",
    "funcnn.checkpoint", "funcnn.summary", "funcnn.layers",
)  # fmt: skip


def module(name: str) -> ModuleType:
    """The module called ``name``, even where a package attribute shadows it.

    ``funcnn.functional.linear`` is the ``linear`` pair factory as an attribute and
    ``funcnn.summary`` is the ``summary`` function, so look in ``sys.modules``.

    Example:
        >>> module("funcnn.functional.linear").__name__
        'funcnn.functional.linear'
    """
    importlib.import_module(name)
    return sys.modules[name]


def plan() -> dict[str, dict[str, tuple[str, str]]]:
    """For each page, each name of its ``__all__`` mapped to ``(kind, target)``.

    ``kind`` is ``"module"`` (``target`` is a documented module), ``"here"`` (the
    entry is on this page, ``target`` is ``page.name``) or ``"link"`` (``target`` is
    the full name of the entry on its home page).

    Example:
        >>> plan()["funcnn"]["Conv2d"]
        ('link', 'funcnn.layers.convolution.Conv2d')
    """
    homes: dict[int, str] = {}
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for page in PAGES:
        mod = module(page)
        entries: dict[str, tuple[str, str]] = {}
        for name in mod.__all__:
            obj = getattr(mod, name)
            if isinstance(obj, ModuleType):
                if obj.__name__ not in PAGES:
                    raise ValueError(f"{page}.{name} is module {obj.__name__}, which has no page")
                entries[name] = ("module", obj.__name__)
            elif id(obj) in homes:
                entries[name] = ("link", homes[id(obj)])
            else:
                homes[id(obj)] = f"{page}.{name}"
                entries[name] = ("here", f"{page}.{name}")
        out[page] = entries
    return out
