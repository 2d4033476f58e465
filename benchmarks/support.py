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


CLVTOOLS_SCRIPT = Path(__file__).resolve().parent / "r" / "clvtools_apparel.R"


def clvtools_timings(labels: list[str], runs: int, timeout: float = 1800.0) -> dict | None:
    """CLVTools' fits on the apparel data timed side by side (``r/clvtools_apparel.R``), as
    ``{label: {"median", "min", "max", "runs", "log_likelihood", "cpu", "version"}}`` (elapsed
    seconds, median CPU seconds of the R process); None when R or
    CLVTools is not installed (the benchmarks then quote ``REFERENCE.md``). Labels: ``pnbd``,
    ``bgnbd``, ``ggomnbd`` (no covariates), ``*_static`` (gender + channel on both
    processes), ``pnbd_dyncov``."""
    import shutil
    import subprocess

    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    probe = subprocess.run(
        [rscript, "-e", 'cat(as.character(packageVersion("CLVTools")))'],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return None
    done = subprocess.run(
        [rscript, str(CLVTOOLS_SCRIPT), str(runs), *labels],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"CLVTools run failed:\n{done.stderr[-2000:]}")
    out = {}
    for line in done.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "CLVTOOLS":
            label, median, low, high, n, log_likelihood, cpu = fields[1:]
            out[label] = {
                "median": float(median),
                "min": float(low),
                "max": float(high),
                "runs": int(n),
                "log_likelihood": float(log_likelihood),
                "cpu": float(cpu),
                "version": probe.stdout.strip(),
            }
    return out
