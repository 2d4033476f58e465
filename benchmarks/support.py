"""Helpers shared by the benchmark scripts (imported as ``benchmarks.support``; not a benchmark
itself: ``run_all.py`` runs the ``bench_*.py`` scripts only)."""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

from clvmodels.io import atomic_write_text


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (``ru_maxrss`` is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_results(path: Path, text: str) -> None:
    """Write a results page atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def lifetimes_comparison_parser(
    description: str, quick_help: str, n_help: str, lifetimes_help: str
) -> argparse.ArgumentParser:
    """The options of a benchmark against lifetimes: ``--quick``, ``--n`` (customers) and
    ``--lifetimes-n`` (customers for lifetimes' fit)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--n", type=int, default=None, help=n_help)
    parser.add_argument("--lifetimes-n", type=int, default=None, help=lifetimes_help)
    return parser
