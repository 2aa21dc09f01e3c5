"""`python -m ffsr` runs the CLI."""

from ffsr.cli import main

main()
