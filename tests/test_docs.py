"""The documentation site builds with warnings as errors and covers every public name.

Every name in the ``__all__`` of every module the API reference promises
(``docs/_api.py``'s ``LISTED``) must appear on that module's page, either with its
own entry or as a link to its entry on its home page, and that entry must exist.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("furo") is None,
    reason="the docs need sphinx and furo: pip install sphinx furo",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(out / ".doctrees"), str(DOCS), str(out)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def _api():
    sys.path.insert(0, str(DOCS))
    try:
        import _api
    finally:
        sys.path.remove(str(DOCS))
    return _api


def _inventory(site: Path) -> set[str]:
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as f:
        inv = InventoryFile.load(f, "", lambda base, uri: uri)
    return {name for kind, items in inv.items() if kind.startswith("py:") for name in items}


def test_every_public_name_is_documented(site: Path) -> None:
    api = _api()
    documented = _inventory(site)
    plan = api.plan()
    missing = []
    for page in api.LISTED:
        html = (site / "api" / "generated" / f"{page}.html").read_text()
        for name in api.module(page).__all__:
            kind, target = plan[page][name]
            anchor = f'href="{target}.html"' if kind == "module" else f"#{target}\""
            if target not in documented or anchor not in html:
                missing.append(f"{page}.{name} -> {target}")
    assert not missing, f"{len(missing)} public names lack an entry: {missing[:20]}"


def test_facade_links_layers_to_their_family(site: Path) -> None:
    html = (site / "api" / "generated" / "funcnn.html").read_text()
    assert 'href="funcnn.layers.convolution.html#funcnn.layers.convolution.Conv2d"' in html


def test_guides_are_built(site: Path) -> None:
    for guide in ("getting_started", "pure_core", "migrating", "saving_loading",
                  "performance", "multiprocess"):  # fmt: skip
        assert (site / "guides" / f"{guide}.html").is_file(), guide
