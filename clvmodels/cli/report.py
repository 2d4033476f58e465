"""The report of a CLV file: totals, value by decile, top customers and plots.

HTML (plots inline) or Markdown (plots as PNG files in ``<name>_files/`` beside it). The
aggregates are computed by DuckDB, out of core; only small samples are plotted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clvmodels.cli.manifest import read_manifest
from clvmodels.cli.pipeline import file_columns
from clvmodels.errors import InputError


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
    extra = [c for c in ("probability_alive", "expected_purchases") if c in columns]
    con = connect()
    try:
        n, total = con.execute(f"SELECT count(*), sum(clv_mean) FROM {source}").fetchall()[0]
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
        "deciles": deciles,
        "top": best,
        "ranked": ranked,
        "sample": sample["clv_mean"].to_numpy(),
        "manifest": read_manifest(path),
    }


def _report_figures(data: dict[str, Any]) -> dict[str, bytes]:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figures = {}

    def png(fig) -> bytes:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    ranked, n = data["ranked"], data["n"]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = ranked["rank_"].to_numpy() / n * 100
    ax.vlines(x, ranked["clv_lower"], ranked["clv_upper"], color="tab:blue", alpha=0.35,
              label="interval")  # fmt: skip
    ax.plot(x, ranked["clv_mean"], "o", color="tab:blue", markersize=2.5, label="mean CLV")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("customer rank by CLV (percent of customers)")
    ax.set_ylabel("CLV")
    ax.set_title("CLV with its interval, customers ranked")
    ax.legend()
    figures["clv_by_rank.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    values = data["sample"]
    positive = values[values > 0]
    if len(positive):
        bins = np.logspace(np.log10(positive.min()), np.log10(positive.max()), 50)
        ax.hist(positive, bins=bins, color="tab:green", alpha=0.8)
        ax.set_xscale("log")
    ax.set_xlabel("mean CLV (log scale)")
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


def _markdown_table(frame, formats: dict[str, str]) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---:" for _ in frame.columns) + "|"
    rows = []
    for record in frame.to_dict(orient="records"):
        cells = [
            formats.get(c, "{}").format(record[c]) if record[c] is not None else ""
            for c in frame.columns
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def figures_folder(out: Path) -> Path:
    """The folder of the PNG files of a Markdown report ``out``: ``<stem>_files`` beside it."""
    return Path(out).with_name(Path(out).stem + "_files")


def write_report(clv_file: Path, out: Path, top: int = 20) -> dict[str, Any]:
    """Write an HTML (plots inline) or Markdown (plots as PNG files beside it) report."""
    import base64
    import html

    from clvmodels.io import atomic_write_text
    from clvmodels.scoring import atomic_output

    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".md"):
        raise InputError(f"--out {out}: use a .html or .md file name")
    data = _report_data(Path(clv_file), top)
    figures = _report_figures(data)
    fmt = {
        "clv_mean": "{:,.2f}",
        "clv_lower": "{:,.2f}",
        "clv_upper": "{:,.2f}",
        "total_clv": "{:,.2f}",
        "mean_clv": "{:,.2f}",
        "share": "{:.1%}",
        "probability_alive": "{:.3f}",
        "mean_p_alive": "{:.3f}",
        "expected_purchases": "{:.2f}",
        "customers": "{:,}",
    }
    lines = [
        f"# Customer lifetime value report: {Path(clv_file).name}",
        "",
        f"- customers: {data['n']:,}",
        f"- total CLV (sum of the customers' means): {data['total']:,.2f}",
    ]
    manifest = data["manifest"] or {}
    eq = manifest.get("customer_equity")
    if eq:
        level = manifest.get("settings", {}).get("interval", 0.9)
        lines.append(
            f"- customer equity: {eq['equity_mean']:,.2f} ({level:.0%} interval "
            f"{eq['equity_lower']:,.2f} to {eq['equity_upper']:,.2f}, from the joint draws)"
        )
    settings = manifest.get("settings")
    if settings:
        keys = ("horizon", "discount_rate", "margin", "interval", "kind", "n_draws", "period")
        lines.append(
            "- settings: " + ", ".join(f"{k}={settings[k]}" for k in keys if k in settings)
        )
    for role, diag in (manifest.get("fit_diagnostics") or {}).items():
        params = ", ".join(f"{k}={v:.4g}" for k, v in (diag.get("params") or {}).items())
        lines.append(f"- {role} model: {diag.get('class')} ({params})")
    lines += [
        "",
        "## Value by decile",
        "",
        _markdown_table(data["deciles"], fmt),
        "",
        f"## Top {len(data['top'])} customers",
        "",
        _markdown_table(data["top"], fmt),
        "",
        "## Plots",
        "",
    ]
    info = {"n_customers": data["n"], "total_clv": data["total"]}
    if suffix == ".md":
        folder = figures_folder(out)
        folder.mkdir(exist_ok=True)
        for name, content in figures.items():
            with atomic_output(folder / name) as tmp:
                tmp.write_bytes(content)
            lines += [f"![{name}]({folder.name}/{name})", ""]
        atomic_write_text(out, "\n".join(lines))
        info["figures"] = [str(folder / n) for n in figures]
        return info
    body = []
    in_table: list[str] = []
    for line in lines + [""]:
        if line.startswith("|"):
            in_table.append(line)
            continue
        if in_table:
            body.append(_html_table(in_table))
            in_table = []
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            body.append(f"<p>{html.escape(line[2:])}</p>")
    for name, content in figures.items():
        encoded = base64.b64encode(content).decode()
        body.append(f'<img alt="{name}" src="data:image/png;base64,{encoded}">')
    document = (
        "<!doctype html><html><head><meta charset='utf-8'><title>CLV report</title><style>"
        "body{font-family:sans-serif;max-width:960px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}img{max-width:100%;display:block;margin:1em 0}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    atomic_write_text(out, document)
    return info


def _html_table(rows: list[str]) -> str:
    import html

    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    header, body = cells[0], cells[2:]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>"]
    for row in body:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"
