"""``python -m funcnn.blas``: OpenBLAS for MLX in any import order, with the user's consent.

``import funcnn`` loads OpenBLAS before ``mlx.core`` (:mod:`funcnn._blas`), but
only when it is imported first; code written for :mod:`mlx.nn` usually starts
with ``import mlx.core as mx``, and then funcnn can only warn.  The commands::

    python -m funcnn.blas install    # startup hook in this environment's site-packages
    python -m funcnn.blas uninstall  # remove it
    python -m funcnn.blas decline    # "keep the reference BLAS": no OpenBLAS, no warning
    python -m funcnn.blas decline --undo
    python -m funcnn.blas status     # which BLAS a fresh interpreter gets, and why

``install`` writes two files into the active environment's site-packages
(``sysconfig``'s ``purelib``; ``--user`` for the user site, ``--site-dir`` for
another directory): ``funcnn-openblas.pth``, whose one guarded ``import`` line
Python's :mod:`site` runs at every interpreter start, and the tiny module it
imports, ``_funcnn_openblas_hook.py``.  That module imports only :mod:`sys`
and puts a finder on ``sys.meta_path``; nothing else happens until a process
first imports ``mlx``.  Then the finder removes itself and runs funcnn's
preload from ``funcnn/_blas.py``, loaded by file path (path recorded at install)
so neither the funcnn package nor ``mlx`` is imported by the hook; it does
nothing when funcnn is already imported (it did the preload itself) or
``mlx.core`` is already loaded, and swallows every exception.  Processes that
never import ``mlx`` pay one module import and a string comparison per
import.  ``FUNCNN_NO_OPENBLAS`` and the decline marker are honoured by the
preload itself, so they win over the hook.  ``install`` also removes a decline
marker (installing is the consent); ``decline`` leaves the hook in place (it
then does nothing).

Example:
    >>> import os, tempfile
    >>> from unittest import mock
    >>> from funcnn import blas
    >>> d = tempfile.mkdtemp()
    >>> with mock.patch.dict(os.environ, XDG_CONFIG_HOME=d):  # install clears a decline marker
    ...     [os.path.basename(p) for p in blas.install(site_dir=d, quiet=True)]
    ['funcnn-openblas.pth', '_funcnn_openblas_hook.py']
    >>> blas.hook_state(d)["installed"]
    True
    >>> [os.path.basename(p) for p in blas.uninstall(site_dir=d, quiet=True)]
    ['funcnn-openblas.pth', '_funcnn_openblas_hook.py']
    >>> blas.hook_state(d)["installed"]
    False
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import site
import subprocess
import sys
import sysconfig

from . import _blas

__all__ = ["decline", "hook_state", "install", "main", "status", "uninstall"]

PTH_NAME = "funcnn-openblas.pth"
HOOK_NAME = "_funcnn_openblas_hook"
BLAS_FILE = os.path.abspath(_blas.__file__)

# One line: site.addpackage exec()s lines that start with "import"; the try keeps a removed or
# broken hook module from printing a traceback at every interpreter start.
_PTH_LINE = f'import sys; exec("try:\\n import {HOOK_NAME}\\nexcept Exception:\\n pass")\n'

_HOOK_TEMPLATE = '''"""funcnn's OpenBLAS startup hook, written by `python -m funcnn.blas install`.

Remove it with `python -m funcnn.blas uninstall`.  Imported at interpreter
start by {pth}; it only adds a finder to sys.meta_path.  When a process first
imports `mlx`, the finder removes itself and runs funcnn's OpenBLAS preload
(BLAS_FILE, loaded by path: neither funcnn nor mlx is imported here), so that
MLX's CPU matmuls use OpenBLAS whatever the import order.  Never raises.
"""
import sys

BLAS_FILE = {blas_file!r}
EARLY = {early!r}


def _preload():
    if "funcnn._blas" in sys.modules or "mlx.core" in sys.modules:
        return  # funcnn was imported first and did it, or it is too late
    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location(EARLY, BLAS_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[EARLY] = module  # funcnn._blas adopts its state from here
        spec.loader.exec_module(module)
        module.preload()
    except Exception:
        sys.modules.pop(EARLY, None)


class FuncnnOpenblasHook:
    def find_spec(self, name, path=None, target=None):
        if name == "mlx" or name.startswith("mlx."):
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            _preload()
        return None


if not any(type(f).__name__ == "FuncnnOpenblasHook" for f in sys.meta_path):
    sys.meta_path.insert(0, FuncnnOpenblasHook())
'''


def _site_dir(site_dir: str | None, user: bool) -> str:
    if site_dir:
        return os.path.abspath(site_dir)
    return site.getusersitepackages() if user else sysconfig.get_path("purelib")


def _hook_files(directory: str) -> tuple[str, str]:
    return os.path.join(directory, PTH_NAME), os.path.join(directory, HOOK_NAME + ".py")


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text)


def install(site_dir: str | None = None, *, user: bool = False, quiet: bool = False) -> list[str]:
    """Write the startup hook into ``site_dir`` (default: this environment's site-packages).

    Returns the two files written; also removes the decline marker. See the
    module docstring for an example.
    """
    directory = _site_dir(site_dir, user)
    pth, hook = _hook_files(directory)
    os.makedirs(directory, exist_ok=True)
    source = _HOOK_TEMPLATE.format(pth=PTH_NAME, blas_file=BLAS_FILE, early=_blas.HOOK_MODULE)
    with open(hook, "w") as f:
        f.write(source)
    with open(pth, "w") as f:  # last: the hook module exists before anything imports it
        f.write(_PTH_LINE)
    _say(quiet, f"installed the OpenBLAS startup hook: {pth}\n  (imports {hook}, preloads via {BLAS_FILE})")
    if decline(undo=True, quiet=True):
        _say(quiet, f"removed the decline marker {_blas.decline_marker()}")
    if not any(os.path.exists(p) for p in _blas.candidates()):
        _say(quiet, "note: no OpenBLAS library found now (Debian/Ubuntu: apt-get install libopenblas0-pthread); "
             f"the hook does nothing until one is, or {_blas.PATH_VAR} points at one")
    return [pth, hook]


def uninstall(site_dir: str | None = None, *, user: bool = False, quiet: bool = False) -> list[str]:
    """Remove the startup hook from ``site_dir``; returns the files removed (empty if none).

    See the module docstring for an example.
    """
    directory = _site_dir(site_dir, user)
    removed = []
    for path in _hook_files(directory):  # the .pth first: never a line importing a missing module
        if os.path.exists(path):
            os.remove(path)
            removed.append(path)
    for cached in glob.glob(os.path.join(directory, "__pycache__", HOOK_NAME + ".*.pyc")):
        os.remove(cached)
    _say(quiet, ("removed " + ", ".join(removed)) if removed else f"no OpenBLAS startup hook in {directory}")
    return removed


def decline(undo: bool = False, *, quiet: bool = False) -> bool:
    """Record (or with ``undo``, forget) "keep the reference BLAS"; returns whether anything changed.

    Example:
        >>> import os, tempfile
        >>> from unittest import mock
        >>> from funcnn import blas
        >>> with mock.patch.dict(os.environ, XDG_CONFIG_HOME=tempfile.mkdtemp()):
        ...     blas.decline(quiet=True), blas.decline(quiet=True), blas.decline(undo=True, quiet=True)
        (True, False, True)
    """
    marker = _blas.decline_marker()
    if undo:
        if not os.path.exists(marker):
            return False
        os.remove(marker)
        _say(quiet, f"removed {marker}: funcnn loads OpenBLAS again where it can")
        return True
    if _blas._declined():
        return False
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker, "w") as f:
        f.write(_blas.DECLINED + "\n")
    _say(quiet, f"wrote {marker}: MLX keeps its reference BLAS and funcnn no longer warns "
         "(undo: python -m funcnn.blas decline --undo, or install)")
    return True


def hook_state(site_dir: str | None = None, *, user: bool = False) -> dict:
    """Whether the hook is installed in ``site_dir`` and which ``funcnn/_blas.py`` it loads.

    Keys: ``installed``, ``pth``, ``blas_file`` (``None`` when not installed),
    ``stale`` (installed, but the recorded file is gone). See the module
    docstring for an example.
    """
    pth, hook = _hook_files(_site_dir(site_dir, user))
    state = {"installed": os.path.exists(pth) and os.path.exists(hook), "pth": pth, "blas_file": None, "stale": False}
    if state["installed"]:
        with open(hook) as f:
            for line in f:
                if line.startswith("BLAS_FILE = "):
                    state["blas_file"] = line.split("=", 1)[1].strip().strip("'\"")
        state["stale"] = not (state["blas_file"] and os.path.exists(state["blas_file"]))
    return state


_PROBE = """
import json, sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if sys.argv[1] == "mlx":
        import mlx.core
    import funcnn
info = funcnn.blas_info()
print(json.dumps({"blas": info["blas"], "reason": info["reason"], "path": info["path"],
                  "warned": any(w.category.__name__ == "FuncnnBlasWarning" for w in caught)}))
"""


def _probe(order: str) -> dict:
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, order], capture_output=True, text=True, timeout=120, check=False)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as e:
        return {"blas": None, "reason": f"probe failed: {e}", "path": None, "warned": False}


def status(site_dir: str | None = None, *, user: bool = False, probe: bool = True) -> dict:
    """The hook, the opt-outs, the library, and (``probe``) what fresh interpreters get in each order.

    Example:
        >>> from funcnn import blas
        >>> sorted(blas.status(probe=False))
        ['declined', 'hook', 'library', 'opt_out_variable']
    """
    found = [p for p in _blas.candidates() if os.path.exists(p)] if sys.platform.startswith("linux") else []
    marker = _blas.decline_marker()
    result = {
        "hook": hook_state(site_dir, user=user),
        "declined": marker if _blas._declined() else None,
        "opt_out_variable": os.environ.get(_blas.OPT_OUT_VAR) or None,
        "library": found[0] if found else None,
    }
    if probe:
        result["funcnn_first"] = _probe("funcnn")
        result["mlx_first"] = _probe("mlx")
    return result


def _describe(s: dict) -> str:
    hook = s["hook"]
    lines = [
        f"startup hook: {'installed' if hook['installed'] else 'not installed'} ({hook['pth']})"
        + (f", STALE: {hook['blas_file']} is gone (run install again)" if hook["stale"] else ""),
        f"declined: {'yes (' + s['declined'] + ')' if s['declined'] else 'no'}",
        f"{_blas.OPT_OUT_VAR}: {s['opt_out_variable'] or 'not set'}",
        f"OpenBLAS library: {s['library'] or 'none found'}",
    ]
    for key, label in (("funcnn_first", "import funcnn, then mlx.core"), ("mlx_first", "import mlx.core, then funcnn")):
        if key in s:
            r = s[key]
            why = f" ({r['path']})" if r["blas"] == "openblas" else f" ({r['reason']})"
            lines.append(f"{label}: {r['blas']}{why}" + (", with a warning" if r["warned"] else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``install``, ``uninstall``, ``decline [--undo]``, ``status [--json]``.

    Example:
        >>> from funcnn import blas
        >>> blas.main(["status", "--no-probe", "--site-dir", "/nonexistent"])  # doctest: +ELLIPSIS
        startup hook: not installed (/nonexistent/funcnn-openblas.pth)
        ...
        0
    """
    parser = argparse.ArgumentParser(prog="python -m funcnn.blas", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("install", "add the startup hook"), ("uninstall", "remove the startup hook"),
                       ("status", "which BLAS fresh interpreters get, and why")):
        sub = commands.add_parser(name, help=text)
        where = sub.add_mutually_exclusive_group()
        where.add_argument("--user", action="store_true", help="the user site-packages")
        where.add_argument("--site-dir", help="this directory instead of the environment's site-packages")
        if name == "status":
            sub.add_argument("--json", action="store_true", help="machine-readable")
            sub.add_argument("--no-probe", action="store_true", help="do not start fresh interpreters")
    sub = commands.add_parser("decline", help="keep the reference BLAS and stop the warning")
    sub.add_argument("--undo", action="store_true", help="forget an earlier decline")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install(args.site_dir, user=args.user)
        elif args.command == "uninstall":
            uninstall(args.site_dir, user=args.user)
        elif args.command == "decline":
            if not decline(undo=args.undo):
                print("nothing to undo" if args.undo else f"already declined ({_blas.decline_marker()})")
        else:
            s = status(args.site_dir, user=args.user, probe=not args.no_probe)
            print(json.dumps(s, indent=2) if args.json else _describe(s))
    except OSError as e:
        print(f"python -m funcnn.blas {args.command}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
