"""`python -m modelplane`: the `modelplane` command."""

from modelplane.cli import app

app()
