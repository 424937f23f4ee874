"""``python -m streams worker|replay|demo|bench-throughput`` (what ``socrec`` forwards to)."""

from streams.cli import main

raise SystemExit(main())
