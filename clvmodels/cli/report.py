"""The report of a CLV file: totals, value by decile, top customers and plots.

HTML (plots inline) or Markdown (plots as PNG files in ``<name>_files/`` beside it), both rendered
with Jinja2 from the templates in ``clvmodels/cli/templates/`` (package data, so an installed
package finds them too). The aggregates are computed by DuckDB, out of core; only small samples
are plotted. Every number shown is formatted here, once, with its unit and the currency; the
templates only lay it out.
"""

from __future__ import annotations

import functools
import math
import numbers
from pathlib import Path
from typing import Any

from clvmodels.cli.manifest import read_manifest
from clvmodels.cli.pipeline import file_columns
from clvmodels.errors import InputError

_UNIT_NAMES = {"H": "hour", "D": "day", "W": "week", "M": "month", "Q": "quarter", "Y": "year"}


def _report_data(path: Path, top: int) -> dict[str, Any]:
    """Aggregates of a CLV file computed by DuckDB (out of core), plus small samples to plot."""
    import duckdb

    from clvmodels.scoring import connect, duckdb_source, file_format, first_line

    columns = file_columns(path, file_format(path))
    needed = ["customer_id", "clv_mean", "clv_lower", "clv_upper"]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(
            f"{path.name} is missing column(s) {missing}; pass the output of `clvmodels score`"
        )
    source = duckdb_source(path, file_format(path))
    optional = ("probability_alive", "expected_purchases", "expected_spend")
    extra = [c for c in optional if c in columns]
    con = connect()
    try:
        n, total, lower_zero = con.execute(
            f"SELECT count(*), sum(clv_mean), count(*) FILTER (WHERE clv_lower <= 0) FROM {source}"
        ).fetchall()[0]
        if n == 0:
            raise InputError(f"{path.name} has no rows")
        alive = ", avg(probability_alive) AS mean_p_alive" if "probability_alive" in extra else ""
        deciles = con.sql(
            f"""SELECT decile, count(*) AS customers, sum(clv_mean) AS total_clv,
                       avg(clv_mean) AS mean_clv{alive}
                FROM (SELECT *, ntile(10) OVER (ORDER BY clv_mean DESC) AS decile FROM {source})
                GROUP BY decile ORDER BY decile"""
        ).df()
        show = ", ".join(needed + extra)
        best = con.sql(f"SELECT {show} FROM {source} ORDER BY clv_mean DESC LIMIT {int(top)}").df()
        step = max(1, int(n) // 400)
        ranked = con.sql(
            f"""SELECT rank_, clv_mean, clv_lower, clv_upper FROM (
                  SELECT clv_mean, clv_lower, clv_upper,
                         row_number() OVER (ORDER BY clv_mean DESC) AS rank_ FROM {source})
                WHERE (rank_ - 1) % {step} = 0 ORDER BY rank_"""
        ).df()
        sample = con.sql(
            f"SELECT clv_mean FROM {source} USING SAMPLE reservoir(100000 ROWS) REPEATABLE (1)"
        ).df()
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path} ({first_line(exc)})") from None
    finally:
        con.close()
    deciles["share"] = deciles["total_clv"] / total if total else float("nan")
    return {
        "n": int(n),
        "total": float(total),
        "n_lower_zero": int(lower_zero),
        "deciles": deciles,
        "top": best,
        "ranked": ranked,
        "sample": sample["clv_mean"].to_numpy(),
        "manifest": read_manifest(path),
        "attrs": _parquet_attrs(path) if file_format(path) == "parquet" else {},
    }


def _parquet_attrs(path: Path) -> dict[str, Any]:
    """The settings ``clvmodels.lifetime_value`` keeps in ``DataFrame.attrs``, which pandas writes
    into the Parquet metadata: used when the file has no manifest (written by a script)."""
    import json

    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
        attrs = json.loads(metadata.get(b"PANDAS_ATTRS", b"{}"))
    except Exception:  # unreadable metadata: the report just does not explain the settings
        return {}
    return attrs if isinstance(attrs, dict) else {}


def _settings_from_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """``lifetime_value``'s attrs (horizon and period in the model's unit, the per-period rate) in
    the form of the manifest's settings."""
    from clvmodels import units

    settings = {k: attrs[k] for k in ("kind", "interval", "n_draws", "margin") if k in attrs}
    unit = attrs.get("time_unit")
    try:
        if _finite(attrs.get("horizon")):
            settings["horizon"] = f"{attrs['horizon']:.6g}{unit or ''}"
        if _finite(attrs.get("period")):
            settings["period"] = f"{attrs['period']:.4g}{unit or ''}"
            rate = attrs.get("period_discount_rate")
            if unit and _finite(rate):
                years = attrs["period"] * units.days_per(unit) / 365.25
                settings["discount_rate"] = (1 + rate) ** (1 / years) - 1
    except Exception:  # attrs of another version: explain what could be read
        pass
    return settings


def _report_figures(data: dict[str, Any], currency: str = "$") -> dict[str, bytes]:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figures = {}
    unit = f" ({currency})" if currency else ""

    def png(fig) -> bytes:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    ranked, n = data["ranked"], data["n"]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = ranked["rank_"].to_numpy() / n * 100
    ax.vlines(x, ranked["clv_lower"], ranked["clv_upper"], color="tab:blue", alpha=0.35,
              label="range")  # fmt: skip
    ax.plot(x, ranked["clv_mean"], "o", color="tab:blue", markersize=2.5, label="mean CLV")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("customer rank by CLV (percent of customers)")
    ax.set_ylabel("CLV" + unit)
    ax.set_title("CLV with its range, customers ranked")
    ax.legend()
    figures["clv_by_rank.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    values = data["sample"]
    positive = values[values > 0]
    if len(positive):
        bins = np.logspace(np.log10(positive.min()), np.log10(positive.max()), 50)
        ax.hist(positive, bins=bins, color="tab:green", alpha=0.8)
        ax.set_xscale("log")
    ax.set_xlabel("mean CLV" + unit + " (log scale)")
    ax.set_ylabel("customers" + (" (sample)" if n > len(values) else ""))
    ax.set_title("Distribution of CLV")
    figures["clv_histogram.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    deciles = data["deciles"]
    cumulative = np.concatenate([[0.0], np.cumsum(deciles["share"].to_numpy())])
    ax.plot(np.arange(0, len(deciles) + 1) * 10, cumulative * 100, "o-", color="tab:purple")
    ax.plot([0, 100], [0, 100], "--", color="grey", label="all customers equal")
    ax.set_xlabel("top percent of customers by CLV")
    ax.set_ylabel("percent of total CLV")
    ax.set_title("Concentration of value (gain curve by decile)")
    ax.legend()
    figures["gain_curve.png"] = png(fig)
    return figures


_FIGURE_TEXT = {
    "clv_by_rank.png": (
        "CLV of each customer with its range, customers ranked by CLV",
        "Each dot is a customer's CLV, the vertical line behind it the range it falls in with "
        "the report's probability; customers ranked from the most valuable (left) to the least "
        "valuable (right). The vertical axis is logarithmic above {one}.",
    ),
    "clv_histogram.png": (
        "Distribution of CLV",
        "How many customers have each CLV (logarithmic axis: each step to the right is a "
        "larger amount); customers with a CLV of 0 are left out.",
    ),
    "gain_curve.png": (
        "Concentration of value",
        "The share of the total CLV held by the top 10%, 20%, ... of customers; the dashed "
        "line is what it would be if every customer were worth the same.",
    ),
}


def check_currency(currency: str) -> str:
    """The currency as shown before amounts: at most 8 printable characters ("" for none)."""
    currency = currency.strip()
    if len(currency) > 8 or not currency.isprintable():
        raise InputError(
            f"--currency {currency!r}: use a symbol or code of at most 8 characters, "
            "such as '$', '€' or 'EUR'"
        )
    return currency


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class _Formats:
    """Number formats of the report: amounts in ``currency``, shares and probabilities in %."""

    def __init__(self, currency: str):
        self.currency = currency

    def money(self, value: Any, decimals: int = 2) -> str:
        """An amount with the currency: ``$1,234.50``, ``-$3.00``, ``EUR 12.00``."""
        if not _finite(value):
            return "n/a"
        sign = "-" if value < 0 else ""
        space = " " if self.currency[-1:].isalpha() else ""
        return f"{sign}{self.currency}{space}{abs(value):,.{decimals}f}"

    @staticmethod
    def number(value: Any, decimals: int = 2) -> str:
        """An amount without the currency (table cells: the currency is in the column header)."""
        return f"{value:,.{decimals}f}" if _finite(value) else "n/a"

    @staticmethod
    def percent(value: Any, decimals: int = 1) -> str:
        return f"{value * 100:.{decimals}f}%" if _finite(value) else "n/a"

    @staticmethod
    def level(value: Any) -> str:
        """A setting in percent, as short as exact: ``0.9`` -> ``90%``, ``0.025`` -> ``2.5%``."""
        return f"{value * 100:.4g}%" if _finite(value) else "n/a"

    def header(self, label: str) -> str:
        """A column header of amounts: ``Mean CLV ($)``."""
        return f"{label} ({self.currency})" if self.currency else label


def _duration(text: Any) -> str:
    """``"12M"`` -> ``"12 months"``, ``"1W"`` -> ``"1 week"``; a bare number stays as it is."""
    from clvmodels import units

    try:
        amount, unit = units.parse_duration(text)
    except Exception:  # a manifest written by another version: show it as it is
        return str(text)
    if unit is None:
        return f"{amount:.4g} (in the model's time unit)"
    name = _UNIT_NAMES.get(unit, unit)
    return f"{amount:.4g} {name}" + ("" if amount == 1 else "s")


def _period(text: Any) -> str:
    """The discounting period: ``"M"`` -> ``"month"``, ``"2W"`` -> ``"2 weeks"``."""
    from clvmodels import units

    text = str(text).strip()
    if not text.isalpha():
        return _duration(text)
    try:
        return _UNIT_NAMES[units.normalize_unit(text)]
    except Exception:  # a manifest written by another version: show it as it is
        return text


def _settings(settings: dict[str, Any], fmt: _Formats) -> dict[str, Any]:
    """The valuation settings of the manifest, each with a plain explanation for a reader who
    does not know the models; ``known`` is False when the CLV file has no manifest."""
    if not settings:
        return {"known": False, "items": [], "interval": None, "kind": None, "horizon": None}
    items = []
    horizon = _duration(settings["horizon"]) if "horizon" in settings else None
    if horizon:
        items.append((
            "Horizon", horizon,
            f"Only purchases in the next {horizon} after the end of the data are counted; what "
            "customers spend after that is not part of these figures.",
        ))  # fmt: skip
    rate = settings.get("discount_rate")
    if _finite(rate):
        period = _period(settings.get("period", "M"))
        items.append((
            "Discount rate", f"{fmt.level(rate)} a year",
            f"Money received later is worth less than money today: an amount received in one "
            f"year counts for {fmt.percent(1 / (1 + rate))} of its face value. Cash is discounted "
            f"every {period}.",
        ))  # fmt: skip
    margin = settings.get("margin")
    if _finite(margin):
        meaning = (
            "The whole amount customers spend is counted: the figures are revenue, not profit."
            if margin == 1
            else f"{fmt.level(margin)} of what customers spend is counted: the figures are "
            "profit, not revenue."
        )
        items.append(("Margin", fmt.level(margin), meaning))
    interval, kind = settings.get("interval"), settings.get("kind")
    if _finite(interval) and kind != "point":
        tail = fmt.level((1 - interval) / 2)
        if kind == "expected":
            meaning = (
                f"Each range shows where the customer's expected value lies with "
                f"{fmt.level(interval)} probability, given what the model could learn from "
                "the data. It leaves out the chance of any one customer buying more or less than "
                "expected, so it says how sure the model is of the average, not what one "
                "customer will bring."
            )
        else:
            meaning = (
                f"With {fmt.level(interval)} probability, what a customer will actually bring "
                f"lies between the low and the high end of the range ({tail} chance of less, "
                f"{tail} of more). The range includes everything that can happen: the "
                "customer may have stopped buying, may buy more or less often and spend more or "
                "less than usual, and the model's own estimates are uncertain."
            )
        items.append(("Range", f"{fmt.level(interval)} probability", meaning))
    elif kind == "point":
        items.append((
            "Range", "none",
            "Single best estimates without a range: the low and high ends equal the estimate.",
        ))  # fmt: skip
    draws = settings.get("n_draws")
    if isinstance(draws, int) and kind != "point":
        rough = " With this few scenarios the ends of the ranges are rough." if draws < 100 else ""
        items.append((
            "Scenarios", f"{draws:,}",
            f"The ranges come from {draws:,} simulated futures of every customer.{rough}",
        ))  # fmt: skip
    return {
        "known": True,
        "items": [{"name": a, "value": b, "meaning": c} for a, b, c in items],
        "interval": interval if _finite(interval) else None,
        "kind": kind,
        "horizon": horizon,
    }


def _decile_table(deciles, fmt: _Formats) -> dict[str, Any]:
    columns = [
        ("Customer group (ranked by CLV)", "text"),
        ("Customers", "number"),
        (fmt.header("Total CLV"), "number"),
        ("Share of total CLV", "number"),
        (fmt.header("Average CLV per customer"), "number"),
    ]
    has_alive = "mean_p_alive" in deciles.columns
    if has_alive:
        columns.append(("Average probability still active", "number"))
    count = len(deciles)
    rows = []
    for record in deciles.to_dict(orient="records"):
        d = int(record["decile"])
        if count == 10:
            group = "Top 10%" if d == 1 else f"{(d - 1) * 10}–{d * 10}%"
        else:
            group = f"Group {d} of {count}"
        row = [
            group,
            f"{int(record['customers']):,}",
            fmt.number(record["total_clv"]),
            fmt.percent(record["share"]),
            fmt.number(record["mean_clv"]),
        ]
        if has_alive:
            row.append(fmt.percent(record["mean_p_alive"]))
        rows.append(row)
    return {"id": "deciles", "columns": _columns(columns), "rows": rows}


def _top_table(top, fmt: _Formats, interval: float | None, horizon: str | None):
    level = f"{fmt.level(interval)} range" if interval is not None else "range"
    spec = [
        ("Rank", "number", None),
        ("Customer ID", "text", None),
        (fmt.header("CLV"), "number", lambda r: fmt.number(r["clv_mean"])),
        (fmt.header(f"{level}: low"), "number", lambda r: fmt.number(r["clv_lower"])),
        (fmt.header(f"{level}: high"), "number", lambda r: fmt.number(r["clv_upper"])),
    ]
    if "probability_alive" in top.columns:
        spec.append(("Probability still active", "number",
                     lambda r: fmt.percent(r["probability_alive"])))  # fmt: skip
    if "expected_purchases" in top.columns:
        label = f"Expected purchases (next {horizon})" if horizon else "Expected purchases"
        spec.append((label, "number", lambda r: fmt.number(r["expected_purchases"])))
    if "expected_spend" in top.columns:
        spec.append((fmt.header("Typical spend per purchase"), "number",
                     lambda r: fmt.number(r["expected_spend"])))  # fmt: skip
    rows = []
    for rank, record in enumerate(top.to_dict(orient="records"), start=1):
        cells = [f"{rank:,}", str(record["customer_id"])]
        cells += [cell(record) for _, _, cell in spec[2:]]
        rows.append(cells)
    return {"id": "top-customers", "columns": _columns([(a, b) for a, b, _ in spec]), "rows": rows}


def _columns(columns: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"label": label, "align": align} for label, align in columns]


def _models(manifest: dict[str, Any]) -> list[str]:
    models = []
    for role, diag in (manifest.get("fit_diagnostics") or {}).items():
        params = ", ".join(
            f"{k} = {v:.4g}" for k, v in (diag.get("params") or {}).items() if _finite(v)
        )
        models.append(f"{role} model: {diag.get('class')} ({params})")
    return models


def report_context(data: dict[str, Any], clv_file: Path, currency: str) -> dict[str, Any]:
    """Everything the templates show, formatted: a dict of strings, lists and small dicts."""
    fmt = _Formats(currency)
    manifest = data["manifest"] or {}
    settings = manifest.get("settings") or _settings_from_attrs(data.get("attrs") or {})
    settings = _settings(settings, fmt)
    equity = manifest.get("customer_equity") or None
    if equity:
        equity = {
            "mean": fmt.money(equity["equity_mean"]),
            "lower": fmt.money(equity.get("equity_lower")),
            "upper": fmt.money(equity.get("equity_upper")),
            "has_range": settings["kind"] != "point"
            and _finite(equity.get("equity_lower"))
            and equity.get("equity_lower") != equity.get("equity_upper"),
        }
    n, zero = data["n"], data["n_lower_zero"]
    interval = settings["interval"]
    return {
        "file_name": Path(clv_file).name,
        "currency": currency,
        "n_customers": f"{n:,}",
        "total": fmt.money(data["total"]),
        "average": fmt.money(data["total"] / n),
        "zero": fmt.money(0, 0),
        "top_decile_share": (
            fmt.percent(float(data["deciles"]["share"].iloc[0])) if len(data["deciles"]) else None
        ),
        "equity": equity,
        "settings": settings,
        "level": fmt.level(interval) if interval is not None else None,
        "tail": fmt.level((1 - interval) / 2) if interval is not None else None,
        "lower_zero": {
            "count": f"{zero:,}",
            "share": fmt.percent(zero / n),
            "any": zero > 0,
        },
        "deciles": _decile_table(data["deciles"], fmt),
        "top": _top_table(data["top"], fmt, interval, settings.get("horizon")),
        "n_top": len(data["top"]),
        "models": _models(manifest),
    }


@functools.cache
def _environment():
    """Templates from the package (``PackageLoader`` reads them through importlib, so an
    installed wheel finds them as well as a source checkout); HTML escaped, Markdown not."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("clvmodels.cli", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md_cell"] = _markdown_cell
    return environment


def render(template: str, **context: Any) -> str:
    """Render one of the report templates (``report.html.j2``, ``report.md.j2``)."""
    return _environment().get_template(template).render(**context)


def _markdown_cell(text: Any) -> str:
    """A Markdown table cell: pipes escaped, line breaks as spaces."""
    return " ".join(str(text).split()).replace("|", "\\|")


def figures_folder(out: Path) -> Path:
    """The folder of the PNG files of a Markdown report ``out``: ``<stem>_files`` beside it."""
    return Path(out).with_name(Path(out).stem + "_files")


def write_report(clv_file: Path, out: Path, top: int = 20, currency: str = "$") -> dict[str, Any]:
    """Write an HTML (plots inline) or Markdown (plots as PNG files beside it) report."""
    import base64

    from clvmodels.io import atomic_write_text
    from clvmodels.scoring import atomic_output

    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".md"):
        raise InputError(f"--out {out}: use a .html or .md file name")
    if top < 0:
        raise InputError(f"--top {top}: must be 0 or more")
    currency = check_currency(currency)
    data = _report_data(Path(clv_file), top)
    figures = _report_figures(data, currency)
    context = report_context(data, Path(clv_file), currency)
    info = {"n_customers": data["n"], "total_clv": data["total"]}
    one = _Formats(currency).money(1, 0)
    shown = []
    if suffix == ".md":
        folder = figures_folder(out)
        folder.mkdir(exist_ok=True)
        for name, content in figures.items():
            with atomic_output(folder / name) as tmp:
                tmp.write_bytes(content)
            title, caption = _FIGURE_TEXT[name]
            shown.append({"name": name, "title": title, "caption": caption.format(one=one),
                          "src": f"{folder.name}/{name}"})  # fmt: skip
        atomic_write_text(out, render("report.md.j2", figures=shown, **context))
        info["figures"] = [str(folder / n) for n in figures]
        return info
    for name, content in figures.items():
        title, caption = _FIGURE_TEXT[name]
        encoded = base64.b64encode(content).decode()
        shown.append({"name": name, "title": title, "caption": caption.format(one=one),
                      "src": f"data:image/png;base64,{encoded}"})  # fmt: skip
    atomic_write_text(out, render("report.html.j2", figures=shown, **context))
    return info
