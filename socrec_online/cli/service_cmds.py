"""Service commands (broker, worker, replay, demo, bench throughput): registered on the shared apps."""
