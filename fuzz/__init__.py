"""Fuzzing of the service's input path (not shipped: outside the packages)."""
