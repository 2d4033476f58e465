"""Console output: results on stdout, progress and warnings on stderr, nothing with --quiet."""

from __future__ import annotations

import warnings

from clvmodels.cli.manifest import relevant_warnings


class Console:
    """stdout for results, stderr for progress and warnings; silent with --quiet."""

    def __init__(self, quiet: bool):
        from rich.console import Console as RichConsole

        self.quiet = quiet
        if quiet:  # libraries that log to stderr (ArviZ, PyMC) stay silent too
            import logging

            for name in ("arviz", "pymc", "pytensor", "distributed"):
                logging.getLogger(name).setLevel(logging.ERROR)
        self.out = RichConsole(quiet=quiet, soft_wrap=True)
        self.err = RichConsole(stderr=True, quiet=quiet, soft_wrap=True)

    def info(self, message: str) -> None:
        self.err.print(message, highlight=False)

    def warn(self, caught: list[warnings.WarningMessage]) -> None:
        for w in relevant_warnings(caught):
            self.err.print(f"Warning: {w.category.__name__}: {w.message}", highlight=False)

    def progress(self, description: str, total: int | None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err,
            disable=self.quiet,
            transient=False,
        )
        task = progress.add_task(description, total=total)
        return progress, task

    # ----------------------------------------------------------------------------------------
    # the result tables of the commands
    # ----------------------------------------------------------------------------------------
    def params_table(self, *models) -> None:
        """The fitted parameters and log-likelihood of each model (``fit``)."""
        if self.quiet:
            return
        from rich.table import Table

        table = Table(title="Fitted parameters", show_header=True)
        table.add_column("model")
        table.add_column("parameters")
        table.add_column("log-likelihood", justify="right")
        for m in models:
            params = ", ".join(f"{k}={v:.4g}" for k, v in m.params_.items())
            ll = getattr(m, "log_likelihood_", None)
            table.add_row(type(m).__name__, params, "" if ll is None else f"{ll:,.2f}")
        self.out.print(table)

    def top_table(self, result, s: dict) -> None:
        """The top customers by CLV and the customer equity (``score``)."""
        if self.quiet or result.top is None or len(result.top) == 0:
            return
        from rich.table import Table

        level = f"{s['interval']:.0%}"
        table = Table(
            title=f"Top {len(result.top)} customers by CLV over {s['horizon']} "
            f"({level} {s['kind']} interval, {s['discount_rate']:.0%} annual discount, "
            f"margin {s['margin']:g})"
        )
        columns = [
            ("customer_id", "customer", None),
            ("clv_mean", "CLV", "{:,.2f}"),
            ("clv_lower", "lower", "{:,.2f}"),
            ("clv_upper", "upper", "{:,.2f}"),
            ("probability_alive", "P(alive)", "{:.3f}"),
            ("expected_purchases", "exp. purchases", "{:.2f}"),
        ]
        top = result.top.reset_index()
        columns = [c for c in columns if c[0] in top.columns]
        for _, header, _ in columns:
            table.add_column(header, justify="right")
        records = top.to_dict(orient="records")
        for row in records:
            table.add_row(
                *[
                    str(row[name]) if fmt is None else fmt.format(row[name])
                    for name, _, fmt in columns
                ]
            )
        self.out.print(table)
        eq = result.equity
        self.out.print(
            f"Customer equity ({result.n_customers:,} customers): {eq['equity_mean']:,.2f} "
            f"[{level} interval {eq['equity_lower']:,.2f} to {eq['equity_upper']:,.2f}]",
            highlight=False,
        )

    def metrics_table(self, table, n_customers: int, calibration_end, out=None) -> None:
        """The main holdout metrics of each model (``evaluate``); all of them are in ``out``."""
        if self.quiet:
            return
        from rich.table import Table

        preferred = {
            "purchases_mae": "MAE",
            "purchases_rmse": "RMSE",
            "purchases_total_error": "total error",
            "purchases_spearman": "Spearman",
            "coverage_90": "90% coverage",
            "log_score": "log score",
            "spend_mae": "spend MAE",
        }
        columns = [c for c in preferred if c in table.columns]
        where = f"all metrics in {out}" if out is not None else "all metrics with --out FILE"
        rendered = Table(
            title=f"Holdout purchases of {n_customers:,} customers (calibration to "
            f"{calibration_end}; {where})"
        )
        rendered.add_column("model")
        for c in columns:
            rendered.add_column(preferred[c], justify="right")
        for name, row in table.iterrows():
            rendered.add_row(str(name), *[f"{row[c]:.4g}" for c in columns])
        self.out.print(rendered)
