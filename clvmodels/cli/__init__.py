"""The ``clvmodels`` command line: transactions -> summary -> models -> CLV, in batch.

Commands (``clvmodels COMMAND --help`` shows every option with examples):

* ``clvmodels rfm TRANSACTIONS --out summary.parquet`` -- the RFM summary (DuckDB, out of core);
* ``clvmodels fit SUMMARY --model bgnbd --spend gamma-gamma --out model_dir/`` -- fit and save;
* ``clvmodels score [INPUT] [--model model_dir/] --horizon 12M ... --out clv.parquet`` -- CLV
  with intervals, streamed in chunks of customers (bounded memory). With no arguments it runs
  the whole pipeline on the bundled CDNOW sample and prints the top customers;
* ``clvmodels evaluate TRANSACTIONS --calibration-end ... --observation-end ...`` -- holdout
  accuracy;
* ``clvmodels report CLV --out report.html`` -- an HTML or Markdown report with plots.

Conventions for batch use:

* settings may come from a TOML file (``--config settings.toml``, or ``$CLVMODELS_CONFIG``):
  a table per command (``[score]``, ``[fit]``, ...) whose keys are the long option names
  (``discount_rate = 0.1``); top-level keys apply to every command that has that option.
  Options given on the command line win over the file;
* an output is never one of the inputs: an ``--out`` that is an input file (by path, link or
  hard link), a folder holding one, or a path inside an input model directory is refused
  (exit code 2) before anything is read;
* every command that writes something also writes ``<output>.manifest.json`` (for a model
  directory: ``manifest.json`` inside it) recording inputs (size, SHA-256), settings, versions,
  fit diagnostics, warnings, wall time and peak memory, and the size and SHA-256 of each output;
* outputs are written to a temporary file and renamed on success: an interrupted job leaves
  the previous complete output or none, never a truncated file. The manifest is renamed into
  place first, then its outputs; a job killed between the two renames leaves a manifest whose
  checksum does not match the output, which :func:`clvmodels.cli.manifest.verify_manifest`
  (and ``clvmodels report``) detects: an output and its manifest never disagree unnoticed;
* temporaries are hidden siblings ``.<output>.tmp-<host>-<pid>-<token>``; scratch folders are
  ``clvmodels-scratch-<host>-<pid>-*`` in the system temporary directory. Those of a job that
  was killed (``kill -9``, power loss) are removed by the next run that writes the same output
  (their process is gone), which says so on stderr;
* errors print one line, ``Error: <what is wrong and how to fix it>``, on stderr and exit with
  code 2 for bad input (files, columns, values, options), 1 for anything else, 130 when
  interrupted (Ctrl-C) and 143 when terminated (SIGTERM, handled like Ctrl-C: the same
  cleanup); ``--debug`` shows the traceback instead. ``--quiet`` prints nothing but errors
  (for cron).

Layout of this package (no model math here: models come from :mod:`clvmodels.registry`):

* ``commands``: the typer ``app`` and its commands ``rfm``, ``fit``, ``score``, ``evaluate``,
  ``report``;
* ``options``: options shared by several commands and the checks of option values;
* ``config``: settings from the TOML file, resolved against the command line and coerced;
* ``pipeline``: steps on files (columns, summarising transactions, fitting the registry's
  estimators on the distinct histories, fit diagnostics);
* ``manifest``: the ``Run`` manifest record, input descriptions, warnings filtering, peak memory;
* ``errors``: one-line errors, exit codes and the ``handle_errors`` command wrapper;
* ``console``: results on stdout, progress and warnings on stderr, the result tables;
* ``report``: the HTML / Markdown report writer.
"""

from __future__ import annotations

from clvmodels.cli.commands import app
from clvmodels.cli.pipeline import fit_models, summarize_transactions_file

__all__ = ["app", "fit_models", "main", "summarize_transactions_file"]


def main() -> None:  # pragma: no cover - console entry point alias
    app()
