"""Rasa custom actions: thin classes that call into the `bot` package."""
