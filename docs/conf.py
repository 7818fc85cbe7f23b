"""Sphinx configuration for the funcnn documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import funcnn  # noqa: E402  (first, as everywhere: it sets up the BLAS before mlx.core)

import _api  # noqa: E402

project = "funcnn"
author = "funcnn contributors"
copyright = "funcnn contributors"
release = version = funcnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"funcnn {release}"

autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Signatures read as written in the source (``mx.array``), not as resolved objects.
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

GENERATED = HERE / "api" / "generated"


def _patch_summaries() -> None:
    """Keep autosummary's one-line summaries from ending inside an inline literal.

    Autosummary cuts a summary at the first ". ", even inside ````x1 . x2````, and
    the half literal is then a docutils warning (Sphinx's check for this parses the
    whole docstring instead of the cut).  Cut such a summary before the literal instead.
    """
    from sphinx.ext import autosummary

    original = autosummary.extract_summary

    def extract_summary(doc: list[str], document: object) -> str:
        summary = original(doc, document)
        if summary.count("``") % 2:
            head = summary[: summary.rfind("``")].rstrip(" ;:,")
            summary = head + " ..." if head else summary.replace("``", "")
        return summary

    autosummary.extract_summary = extract_summary


_patch_summaries()


def _directive(obj: object) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    return "autofunction" if callable(obj) else "autodata"


def _page(name: str, entries: dict[str, tuple[str, str]]) -> str:
    """One API page: the module's docstring, a table of its names, then their entries."""
    mod = _api.module(name)
    # The tables use full names with no current module: autosummary refuses
    # ``funcnn.tree.tree_map`` inside ``funcnn.tree`` (it suspects an import cycle).
    lines = [name, "=" * len(name), "", f".. automodule:: {name}", "", ".. currentmodule:: None", ""]
    here = [n for n, (kind, _) in entries.items() if kind == "here"]
    modules = [(n, t) for n, (kind, t) in entries.items() if kind == "module"]
    links: dict[str, list[str]] = {}
    for _n, (kind, target) in entries.items():
        if kind == "link":
            links.setdefault(target.rpartition(".")[0], []).append(target)
    if here:
        lines += ["Defined here", "-" * 12, "", ".. autosummary::", ""]
        lines += [f"   ~{name}.{n}" for n in here] + [""]
    for home, targets in links.items():
        title = f"From :mod:`{home}`"
        lines += [title, "-" * len(title), "", ".. autosummary::", ""]
        lines += [f"   ~{t}" for t in targets] + [""]
    if modules:
        lines += ["Modules", "-" * 7, ""]
        lines += [f"- ``{n}``: :mod:`{t}`" for n, t in modules] + [""]
    if here:
        lines += ["Reference", "-" * 9, "", f".. currentmodule:: {name}", ""]
        for n in here:
            lines += [f".. {_directive(getattr(mod, n))}:: {name}.{n}"]
            if inspect.isclass(getattr(mod, n)):
                lines += ["   :members:"]
            lines += [""]
    return "\n".join(lines)


def write_api_pages(app: object = None) -> None:
    """Write ``api/generated/<module>.rst`` for every page of :data:`_api.PAGES`.

    Autosummary's own stub generation resolves ``funcnn.functional.linear`` to the
    ``linear`` pair factory (an attribute shadowing the family module), so the
    module stubs are written here and autosummary builds the tables inside them.
    """
    GENERATED.mkdir(parents=True, exist_ok=True)
    for name, entries in _api.plan().items():
        path = GENERATED / f"{name}.rst"
        text = _page(name, entries)
        # Rewriting unchanged files would make every incremental build start over.
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def setup(app: object) -> None:
    app.connect("builder-inited", write_api_pages)
