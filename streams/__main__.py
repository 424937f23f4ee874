"""``python -m streams COMMAND ...`` is ``socrec COMMAND ...`` (the same typer app): how the demo,
the benchmarks and the tests start worker and trainer processes without an installed script."""

from streams.cli import main

main()
