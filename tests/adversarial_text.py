"""Hostile text for the fuzz tests: every Unicode category, control characters, bidi marks, long runs.

Shared by the in-process property tests and the real-server batch, so both
see the same kinds of input. Texts stay within the channels' length limit.
"""

from __future__ import annotations

from typing import List

from hypothesis import strategies as st

from bench.worst_case import RUN_UNITS, worst_case_candidates
from bot.channels.text import MAX_MESSAGE_CHARS

# Any code point a JSON body can carry (no lone surrogates).
any_character = st.characters(blacklist_categories=("Cs",))
control_characters = st.characters(whitelist_categories=("Cc", "Cf", "Zl", "Zp", "Zs"))


@st.composite
def long_runs(draw: st.DrawFn) -> str:
    """A unit repeated up to the length limit, sometimes with something around it."""
    unit = draw(st.sampled_from(RUN_UNITS))
    length = draw(st.integers(min_value=1, max_value=MAX_MESSAGE_CHARS))
    run = (unit * (length // len(unit) + 1))[:length]
    prefix = draw(st.text(any_character, max_size=20))
    return (prefix + run)[:MAX_MESSAGE_CHARS]


@st.composite
def nested_brackets(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=1, max_value=MAX_MESSAGE_CHARS // 2 - 1))
    inner = draw(st.text(any_character, max_size=10))
    opening, closing = draw(st.sampled_from([("(", ")"), ("[", "]"), ("{", "}"), ("<", ">"), ("«", "»")]))
    return (opening * depth + inner + closing * depth)[:MAX_MESSAGE_CHARS]


@st.composite
def mixed_pieces(draw: st.DrawFn) -> str:
    """Pieces of every kind, concatenated."""
    pieces = draw(st.lists(st.one_of(st.text(any_character, max_size=50), st.sampled_from(RUN_UNITS)), max_size=60))
    return "".join(pieces)[:MAX_MESSAGE_CHARS]


hostile_text = st.one_of(
    st.text(any_character, max_size=300),
    st.text(control_characters, max_size=100),
    long_runs(),
    nested_brackets(),
    mixed_pieces(),
)


def worst_case_samples() -> List[str]:
    """Texts at the length limit, one per kind of run and a few random mixes (as `python -m bench worst-case`)."""
    return list(worst_case_candidates().values())
