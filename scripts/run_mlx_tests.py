#!/usr/bin/env python
"""Run MLX's own ``mlx.nn`` test files with funcnn standing in for ``mlx.nn``.

What it measures.  ``import funcnn as nn`` claims to be a drop-in replacement for
``mlx.nn``; the strongest outside check of that claim is MLX's own test suite for
``mlx.nn``.  This script runs those test files with pytest in a fresh interpreter in
which funcnn is installed in ``sys.modules`` under every ``mlx.nn`` module name
(``mlx.nn``, ``mlx.nn.layers``, ``mlx.nn.layers.<family>``, ``mlx.nn.init``,
``mlx.nn.losses``, ``mlx.nn.utils``) *before* anything imports ``mlx.nn``, so
``import mlx.nn as nn`` and ``import mlx.nn.init as init`` in the tests get funcnn.
Inside the run it checks that the alias took effect (``mlx.nn.Linear`` comes from
funcnn, every test module's ``nn``/``init`` global is a funcnn module, and no real
``mlx.nn`` module was loaded by the end).  ``--baseline`` runs the same files against
the installed ``mlx.nn`` instead: the tests failing there (version skew between the
test files and the installed MLX, GPU-only or torch-only tests) are not funcnn's
business; list them in a file and pass it with ``--exclude`` so the funcnn run
reports them apart and does not count them.

Both modes import funcnn first (it selects the BLAS for MLX's CPU matmuls at import,
see ``funcnn/_blas.py``), so both runs use the same BLAS; set ``FUNCNN_NO_OPENBLAS=1``
to run both on MLX's bundled BLAS.

Getting the test files.  They are another project's code: keep them outside this
repository (never commit them).  The files are ``mlx_tests.py`` (a helper the tests
import), ``test_nn.py``, ``test_losses.py``, ``test_init.py`` and ``test_upsample.py``
from ``python/tests/`` of https://github.com/ml-explore/mlx, ideally at the tag of
the installed MLX (``python -c "import mlx.core as mx; print(mx.__version__)"``)::

    git clone --depth 1 --branch v0.32.4 https://github.com/ml-explore/mlx /tmp/mlx-src
    mkdir -p /tmp/mlx_upstream_tests
    cp /tmp/mlx-src/python/tests/{mlx_tests,test_nn,test_losses,test_init,test_upsample}.py \\
       /tmp/mlx_upstream_tests/

Usage (from the repository root, in its virtual environment)::

    python scripts/run_mlx_tests.py /tmp/mlx_upstream_tests --baseline \\
        --write-exclude /tmp/mlx_upstream_tests/known_failures.txt
    python scripts/run_mlx_tests.py /tmp/mlx_upstream_tests \\
        --exclude /tmp/mlx_upstream_tests/known_failures.txt

Extra arguments go to pytest (e.g. ``-k pooling``, ``-x``).  The summary at the end
sorts the failures into *missing names* (an ``AttributeError``/``ImportError`` for a
name funcnn does not have yet) and *behaviour* (everything else: the interesting
ones).  ``--json PATH`` also writes every test's outcome.  The exit status is 0 when
no test outside the exclude list failed, 1 otherwise, 3 when the alias did not take
effect.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# --- the child: a fresh interpreter that installs the alias, then runs pytest --------------


def _install_alias() -> dict:
    """Put funcnn's modules in ``sys.modules`` under every ``mlx.nn`` name; return the map."""
    import importlib

    import funcnn  # first: it loads the BLAS before mlx.core
    import funcnn.layers

    loaded = [n for n in sys.modules if n == "mlx.nn" or n.startswith("mlx.nn.")]
    if loaded:
        raise RuntimeError(f"mlx.nn was imported before the alias was installed: {loaded}")
    suffixes = ["", ".layers", ".layers.base", ".init", ".losses", ".utils"]
    suffixes += [".layers." + family for family in funcnn.layers.FAMILY_NAMES]
    alias = {"mlx.nn" + s: importlib.import_module("funcnn" + s) for s in suffixes}
    sys.modules.update(alias)
    import mlx

    # `import mlx.nn as nn` reads the attribute of the package, not only sys.modules.
    mlx.nn = alias["mlx.nn"]
    return alias


def _failure_message(report) -> str:
    """One line saying why ``report`` failed or was skipped, with where it happened."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        first = crash.message.strip().splitlines()[0] if crash.message.strip() else ""
        # Where: the test's own line, then the deepest frame in funcnn (the culprit, if any).
        entries = getattr(getattr(longrepr, "reprtraceback", None), "reprentries", [])
        locs = [e.reprfileloc for e in entries if getattr(e, "reprfileloc", None)]
        test_locs = [f for f in locs if Path(f.path).name.startswith("test_")]
        lib_locs = [f for f in locs if "funcnn" in Path(f.path).parts]
        where = [f"{Path(f.path).name}:{f.lineno}" for f in test_locs[-1:]]
        where += [f"{f.path[f.path.rfind('funcnn'):]}:{f.lineno}" for f in lib_locs[-1:]]
        return f"{first} [{' -> '.join(where) or f'{Path(crash.path).name}:{crash.lineno}'}]"
    lines = str(longrepr).strip().splitlines()
    return lines[-1] if lines else ""


# A module, class or instance lacking a name funcnn does not have yet.
_MISSING = [
    re.compile(r"(?:module|type object) '([\w.]+)' has no attribute '(\w+)'"),
    re.compile(r"cannot import name '(\w+)' from '([\w.]+)'"),
    re.compile(r"'(\w+)' object has no attribute '(\w+)'"),
]


def _missing_name(message: str) -> str | None:
    """``owner.name`` when ``message`` says a name is absent, else None."""
    for pattern, order in zip(_MISSING, ((1, 2), (2, 1), (1, 2))):
        m = pattern.search(message)
        if m:
            return f"{m.group(order[0])}.{m.group(order[1])}"
    return None


class _Recorder:
    """pytest plugin: checks the alias, records each test's outcome, prints the summary."""

    def __init__(self, baseline: bool, exclude: list[str]) -> None:
        self.baseline = baseline
        self.prefix = "mlx.nn" if baseline else "funcnn"
        self.exclude = exclude
        self.results: dict[str, dict] = {}
        self.alias_notes: list[str] = []
        self.alias_errors: list[str] = []

    # alias checks
    def _check_library(self, when: str) -> None:
        import mlx
        import mlx.nn

        if not mlx.nn.Linear.__module__.startswith(self.prefix):
            self.alias_errors.append(f"{when}: mlx.nn.Linear is from {mlx.nn.Linear.__module__}")
        if not self.baseline:
            if mlx.nn is not sys.modules["funcnn"]:
                self.alias_errors.append(f"{when}: mlx.nn is {mlx.nn.__name__}, not funcnn")
            real = [
                n
                for n, m in list(sys.modules.items())
                if (n == "mlx.nn" or n.startswith("mlx.nn."))
                and not getattr(m, "__name__", "").startswith("funcnn")
            ]
            if real:
                self.alias_errors.append(f"{when}: real mlx.nn modules loaded: {sorted(real)}")

    def pytest_sessionstart(self, session) -> None:
        self._check_library("session start")

    def pytest_collection_modifyitems(self, session, config, items) -> None:
        seen = set()
        for item in items:
            module = getattr(item, "module", None)
            if module is None or module.__name__ in seen:
                continue
            seen.add(module.__name__)
            for name in ("nn", "init"):
                obj = getattr(module, name, None)
                if not isinstance(obj, types.ModuleType):
                    continue
                ok = obj.__name__.startswith(self.prefix)
                (self.alias_notes if ok else self.alias_errors).append(
                    f"{module.__name__}.{name} -> {obj.__name__}"
                )
        if self.alias_errors:
            import pytest

            pytest.exit("alias not in effect: " + "; ".join(self.alias_errors), returncode=3)

    # outcomes
    def pytest_runtest_logreport(self, report) -> None:
        entry = self.results.setdefault(
            report.nodeid,
            {"outcome": "passed", "message": "", "subtests_failed": 0, "subtests_passed": 0},
        )
        is_subtest = hasattr(report, "context")  # pytest's SubtestReport
        if is_subtest:
            entry["subtests_" + ("failed" if report.failed else "passed")] += not report.skipped
        if report.failed:
            if entry["outcome"] != "failed":
                entry["message"] = _failure_message(report)
            entry["outcome"] = "failed"
        elif report.skipped and not is_subtest and entry["outcome"] == "passed":
            entry["outcome"], entry["message"] = "skipped", _failure_message(report)

    def _excluded(self, nodeid: str) -> bool:
        short = nodeid.split("::", 1)[-1]
        return nodeid in self.exclude or short in self.exclude

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        self._check_library("session end")
        for nodeid, entry in self.results.items():
            entry["excluded"] = self._excluded(nodeid)
            failed = entry["outcome"] == "failed"
            entry["missing_name"] = _missing_name(entry["message"]) if failed else None
            if entry["excluded"]:
                entry["category"] = "excluded"
            elif failed:
                entry["category"] = "missing" if entry["missing_name"] else "behaviour"
            else:
                entry["category"] = entry["outcome"]

    def pytest_terminal_summary(self, terminalreporter) -> None:
        write = terminalreporter.write_line
        res = self.results
        by = {c: sorted(n for n, e in res.items() if e["category"] == c)
              for c in ("passed", "skipped", "missing", "behaviour", "excluded")}
        mode = "baseline: the installed mlx.nn" if self.baseline else "funcnn installed as mlx.nn"
        terminalreporter.section(f"mlx test run ({mode})")
        write("alias check: " + ("FAILED: " + "; ".join(self.alias_errors) if self.alias_errors
                                  else "ok (" + ", ".join(self.alias_notes) + ")"))
        sub_failed = sum(e["subtests_failed"] for n, e in res.items() if not e["excluded"])
        write(f"tests: {len(res)}; passed {len(by['passed'])}, "
              f"failed {len(by['missing']) + len(by['behaviour'])} "
              f"(missing names {len(by['missing'])}, behaviour {len(by['behaviour'])}), "
              f"skipped {len(by['skipped'])}, excluded {len(by['excluded'])}; "
              f"failed subtests outside the exclude list: {sub_failed}")
        names = sorted({res[n]["missing_name"] for n in by["missing"]})
        if names:
            write("missing names: " + ", ".join(names))
        titles = {"behaviour": "FAILED" if self.baseline else "BEHAVIOUR", "missing": "MISSING",
                  "skipped": "SKIPPED"}
        for key, title in titles.items():
            for nodeid in by[key]:
                write(f"{title:9} {nodeid} - {res[nodeid]['message']}")
        for nodeid in by["excluded"]:
            entry = res[nodeid]
            write(f"EXCLUDED  {nodeid} ({entry['outcome']}) - {entry['message']}")
        shorts = set(res) | {n.split("::", 1)[-1] for n in res}
        unused = [e for e in self.exclude if e not in shorts]
        if unused:
            write("exclude entries that matched no test: " + ", ".join(unused))

    def failed_outside_exclude(self) -> list[str]:
        """Ids of the failed tests that the exclude list does not name."""
        bad = ("missing", "behaviour")
        return sorted(n for n, e in self.results.items() if e["category"] in bad)


def _child(config: dict) -> int:
    sys.path.insert(0, str(REPO))  # the working tree's funcnn, not another installed copy
    if config["baseline"]:
        import funcnn  # noqa: F401  (same BLAS as the funcnn run; mlx.nn stays the real one)
    else:
        _install_alias()
    import pytest

    tests_dir = config["tests_dir"]
    sys.path.insert(0, tests_dir)  # the tests `import mlx_tests`
    os.chdir(tests_dir)
    recorder = _Recorder(config["baseline"], config["exclude"])
    args = [*config["files"], "-p", "no:cacheprovider", "--rootdir", tests_dir]
    args += config["pytest_args"]
    status = pytest.main(args, plugins=[recorder])
    if config["json"]:
        Path(config["json"]).write_text(json.dumps(
            {"baseline": config["baseline"], "alias_errors": recorder.alias_errors,
             "pytest_status": int(status), "results": recorder.results}, indent=1))
    if config["write_exclude"]:
        failed = sorted(n for n, e in recorder.results.items() if e["outcome"] == "failed")
        Path(config["write_exclude"]).write_text(
            "# tests failing on the installed mlx.nn itself (run_mlx_tests.py --baseline)\n"
            + "".join(f"{n}\n" for n in failed))
    if recorder.alias_errors or int(status) == 3:
        return 3
    if int(status) not in (0, 1):  # usage error, interrupted, nothing collected
        return int(status)
    return 1 if recorder.failed_outside_exclude() else 0


# --- the parent: parse the arguments, start the fresh interpreter ---------------------------


def _read_exclude(path: str | None) -> list[str]:
    if not path:
        return []
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line]


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the tests in a fresh interpreter, return its exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tests_dir", help="folder holding mlx_tests.py and MLX's test_*.py files")
    parser.add_argument("--baseline", action="store_true", help="run against the real mlx.nn")
    parser.add_argument("--exclude", help="file of test ids (one a line, # comments) known to "
                                          "fail on mlx.nn itself: reported apart, not counted")
    parser.add_argument("--write-exclude", help="write the ids of the failing tests to this file")
    parser.add_argument("--files", nargs="+", help="test files to run (default: test_*.py there)")
    parser.add_argument("--json", help="write every test's outcome to this JSON file")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds (default 1800)")
    args, pytest_args = parser.parse_known_args(argv)
    tests_dir = Path(args.tests_dir).resolve()
    if not (tests_dir / "mlx_tests.py").is_file():
        parser.error(f"expected mlx_tests.py in {tests_dir}, found none (see the docstring)")
    files = args.files or sorted(p.name for p in tests_dir.glob("test_*.py"))
    if not files:
        parser.error(f"expected test_*.py files in {tests_dir}, found none")
    config = {
        "tests_dir": str(tests_dir), "files": files, "baseline": args.baseline,
        "exclude": _read_exclude(args.exclude), "pytest_args": pytest_args,
        "json": args.json and str(Path(args.json).resolve()),
        "write_exclude": args.write_exclude and str(Path(args.write_exclude).resolve()),
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps(config)]
    try:
        return subprocess.run(cmd, check=False, timeout=args.timeout).returncode
    except subprocess.TimeoutExpired:
        print(f"run_mlx_tests: timed out after {args.timeout:g} s", file=sys.stderr)
        return 124


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_child":
        sys.exit(_child(json.loads(sys.argv[2])))
    sys.exit(main())
