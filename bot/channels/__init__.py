"""Input channels that harden Rasa's own against bad input."""
