"""Every docstring example of the package runs as a doctest (what ``pytest --doctest-modules
clvmodels`` would do), one test per module.

Every module of ``clvmodels`` is imported (the optional extras are all installed with the
``test`` extra) and its examples are run with the module's own globals, so an example must import
what it uses, as a reader would. An example that needs something unavailable (a fitted model on
data not at hand, a cluster, minutes of sampling) is marked ``# doctest: +SKIP``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import matplotlib
import pytest

import clvmodels

matplotlib.use("Agg")

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = ["clvmodels"]
    for info in pkgutil.walk_packages(clvmodels.__path__, "clvmodels."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # an entry point: running it is the CLI, not a library module
        names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def _doctests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    # the finder keeps objects defined in the module (imported names are tested in their own)
    return [test for test in finder.find(module, module_name) if test.examples]


def _run(tests: list[doctest.DocTest]) -> tuple[int, int, str]:
    """Run the tests; (attempted, failed, report of the failures)."""
    lines: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    attempted = failed = 0
    for test in tests:
        result = runner.run(test, out=lines.append, clear_globs=True)
        attempted += result.attempted
        failed += result.failed
    return attempted, failed, "".join(lines)


def test_modules_found():
    # the walk reaches the families, the estimators and the subpackages
    assert {
        "clvmodels.families.bg_nbd",
        "clvmodels.valuation.spec",
        "clvmodels.cli.commands",
    } <= set(MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    tests = _doctests(module_name)
    attempted, failed, report = _run(tests)
    assert failed == 0, (
        f"{failed} of {attempted} docstring examples failed in {module_name}:\n{report}"
    )
