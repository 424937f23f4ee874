"""The pure-library half of the streaming service: decoding, state, scoring (no Kafka here)."""
