"""``python -m facelens`` runs the CLI."""

from facelens.cli.main import main

main()
