"""`python -m bot`: the assistant's command line, its logs kept free of people's words and secrets."""

import sys

from bot.cli import main

sys.exit(main(private_process=True))
