"""``python -m socrec_online.cli``: the ``socrec`` script without an installed entry point."""

from socrec_online.cli import main

main()
