"""Measures what the assistant would do for labeled messages (`python -m bot evaluate`)."""
