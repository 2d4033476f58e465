"""``python -m clvmodels.cli``: the command line."""

from clvmodels.cli import app

if __name__ == "__main__":  # pragma: no cover
    app()
