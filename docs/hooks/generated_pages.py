"""MkDocs hook: pages generated from the repository at build time (not stored under docs/).

* ``reference/cli.md``: the output of ``clvmodels --help`` and ``clvmodels COMMAND --help`` for
  every command of the typer app, captured in one subprocess with a fixed width and no colour,
  so the page is exactly what a user sees in a terminal and new commands appear by themselves;
* ``benchmarks/index.md`` and ``benchmarks/results.md``: ``benchmarks/README.md`` and
  ``benchmarks/results/RESULTS.md`` as they are in the repository, with their relative links
  rewritten for the site and the files they link to (the plots) copied along.

It also tidies the reStructuredText that the docstrings use inside Markdown: a role such as
``:func:`clvmodels.rfm_summary``` becomes a cross-reference to the documented object (plain code
when that object is not documented), and a paragraph ending in ``::`` (a literal block follows)
ends in ``:``.

A failure (the CLI cannot be imported, a help exits non-zero, a source file is missing) stops the
build with the reason rather than publishing an empty page.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]

# repository file -> page of the site
COPIED_PAGES = {
    "benchmarks/README.md": "benchmarks/index.md",
    "benchmarks/results/RESULTS.md": "benchmarks/results.md",
}
CLI_PAGE = "reference/cli.md"
HELP_WIDTH = 100

# Runs in a fresh interpreter so that typer/rich read the width and colour settings from the
# environment at import time; prints {"command line": "help text"} as JSON.
_HELP_SCRIPT = r"""
import json
import typer
from typer.testing import CliRunner
from clvmodels.cli import app

command = typer.main.get_command(app)
runner = CliRunner()
helps = {}
for args in [[], *([name] for name in command.commands)]:
    result = runner.invoke(app, [*args, "--help"], prog_name="clvmodels")
    if result.exit_code != 0:
        raise SystemExit(f"clvmodels {' '.join(args)} --help exited with {result.exit_code}: "
                         f"{result.output}{result.exception!r}")
    helps[" ".join(["clvmodels", *args])] = result.output
print(json.dumps(helps))
"""

_ROLE = re.compile(
    r":(?:py:)?(?:mod|func|meth|class|attr|data|exc|obj|const|term):<code>~?([^<]+)</code>"
)
_LITERAL_INTRO = re.compile(r"::(\s*</p>)")
_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def _cli_help() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "CLVMODELS_CONFIG"}
    }
    env.update(
        TERMINAL_WIDTH=str(HELP_WIDTH),
        COLUMNS=str(HELP_WIDTH),
        NO_COLOR="1",
        TERM="dumb",
        _TYPER_FORCE_DISABLE_TERMINAL="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    if proc.returncode != 0:
        raise PluginError(f"could not capture the CLI help: {proc.stderr.strip() or proc.stdout}")
    return json.loads(proc.stdout)


def _cli_page() -> str:
    helps = _cli_help()
    lines = [
        "# Command-line reference",
        "",
        "Generated when the site is built from the installed `clvmodels` command: each section is",
        "the output of `clvmodels --help` or `clvmodels COMMAND --help`. The user guide page",
        "[Score in batch with the CLI](../guide/cli.md) walks through a typical run.",
        "",
    ]
    for command_line, text in helps.items():
        body = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
        lines += [f"## `{command_line}`", "", "````text", body, "````", ""]
    return "\n".join(lines)


def _rewrite_links(text: str, source: str, page: str, assets: dict[str, str]) -> str:
    """Point the relative links of ``source`` (a repository path) at the site: to the page a
    copied file became, or to a copy of the linked file next to ``page``."""
    source_dir = posixpath.dirname(source)
    page_dir = posixpath.dirname(page)

    def replace(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^#|^/", target):
            return match.group(0)  # absolute URL, anchor or site-absolute path
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(source_dir, path))
        if repo_path in COPIED_PAGES:
            site_path = COPIED_PAGES[repo_path]
        elif (ROOT / repo_path).is_file():
            relative = posixpath.relpath(repo_path, source_dir)
            if relative.startswith(".."):
                site_path = posixpath.join("repository", repo_path)
            else:
                site_path = posixpath.join(page_dir, relative)
            assets[site_path] = repo_path
        else:
            return match.group(0)  # left as is: the strict build reports it
        new = posixpath.relpath(site_path, page_dir or ".")
        return f"{match.group(1)}{new}{'#' + anchor if anchor else ''}{match.group(3)}"

    return _LINK.sub(replace, text)


def on_files(files: Files, config) -> Files:
    assets: dict[str, str] = {}
    for source, page in COPIED_PAGES.items():
        path = ROOT / source
        if not path.is_file():
            raise PluginError(f"{source} is missing: it is published as {page}")
        text = _rewrite_links(path.read_text(encoding="utf-8"), source, page, assets)
        files.append(File.generated(config, page, content=text))
    for site_path, repo_path in sorted(assets.items()):
        files.append(File.generated(config, site_path, abs_src_path=str(ROOT / repo_path)))
    files.append(File.generated(config, CLI_PAGE, content=_cli_page()))
    return files


def on_serve(server, config, builder):
    """``mkdocs serve`` rebuilds when the copied files or the CLI change."""
    for source in COPIED_PAGES:
        server.watch(str(ROOT / source))
    server.watch(str(ROOT / "clvmodels" / "cli"))
    return server


def _cross_reference(match: re.Match) -> str:
    identifier = match.group(1).strip()
    name = identifier.removesuffix("()")
    # `optional`: autorefs links it when the object is documented, else leaves plain code
    return f'<autoref identifier="{name}" optional><code>{identifier}</code></autoref>'


def on_page_content(html: str, page, config, files) -> str:
    html = _ROLE.sub(_cross_reference, html)
    return _LITERAL_INTRO.sub(r":\1", html)
