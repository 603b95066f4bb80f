"""Benchmark suite (`make bench`): our configuration against Rasa 3.6's default, side by side."""
