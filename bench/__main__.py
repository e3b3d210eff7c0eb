"""`python3 -m bench [--quick] [--only NAMES]`: see bench/README.md."""

from bench.run import cli

cli()
