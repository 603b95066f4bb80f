"""Questions the assistant could not answer well, kept without personal data for editors.

An event broker (`broker.py`) sees every user message inside the Rasa server,
keeps the ones that ended in a fallback, a "Did you mean" or an unsure answer
(`decision.py`), removes personal data (`scrub.py`) and stores them
(`store.py`). `python -m bot unanswered` groups similar ones (`grouping.py`)
and prints them (`report.py`).
"""
