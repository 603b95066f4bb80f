"""Text normalisation: what the patterns see, and the map back to the original."""

from __future__ import annotations

import pytest

from bot.risk import RiskScreen
from bot.risk.normalise import TextNormaliser

KNOWN = {"i", "want", "to", "die", "kill", "myself", "help", "please", "so", "sad", "ok"}


@pytest.fixture
def normaliser() -> TextNormaliser:
    return TextNormaliser(
        rewrites={"wanna": "want to", "kms": "kill myself", "suicde": "suicide"},
        fuzzy_targets=("myself", "suicide"),
        is_known_word=KNOWN.__contains__,
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I WANT TO DIE", "i want to die"),
        ("I\u2019m ok", "i'm ok"),
        ("\u201cok\u201d", '"ok"'),
        ("\uff29 want", "i want"),  # full-width letter, NFKC
        ("d\u200bie", "die"),  # zero-width space inside a word
        ("i\x00want\tto\x07die", "i want to die"),
        ("line one\r\nline two", "line one\nline two"),
        ("caf\u00e9", "cafe"),
        ("dieeeee", "die"),
        ("pleaseeee helppp", "please help"),
        ("killll myselfff", "kill myself"),
        ("soooo sad", "so sad"),
        ("i    want", "i want"),
        ("!!!!!", "!!"),
        ("i wanna die", "i want to die"),
        ("kms", "kill myself"),
        ("suicde", "suicide"),
        ("myslef", "myself"),
        ("self-harm", "self harm"),
    ],
)
def test_normalises(normaliser: TextNormaliser, text: str, expected: str) -> None:
    assert normaliser.normalise(text).text == expected


@pytest.mark.parametrize("text", [None, "", "   ", "\x00\x01"])
def test_empty_or_blank_text_normalises_without_error(normaliser: TextNormaliser, text: str) -> None:
    assert normaliser.normalise(text).text.strip() == ""


def test_known_words_are_never_corrected() -> None:
    normaliser = TextNormaliser({}, fuzzy_targets=("myself",), is_known_word={"mystery"}.__contains__)
    assert normaliser.normalise("mystery").text == "mystery"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("So I wanna die now", "wanna die"),
        ("I\u2019m going to kms", "kms"),
        ("\uff29 want to dieeeee!", "\uff29 want to dieeeee"),
        ("ok\u200b\u200b then, dieeee", "dieeee"),
    ],
)
def test_offsets_map_back_to_the_original(normaliser: TextNormaliser, text: str, fragment: str) -> None:
    normalised = normaliser.normalise(text)
    wanted = normaliser.normalise(fragment).text
    start = normalised.text.index(wanted)
    original_start, original_end = normalised.original_span(start, start + len(wanted))
    assert text[original_start:original_end] == fragment


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Im gonna kil myself", "im going to kill myself"),
        ("i think i od'd", "i think i overdosed"),
        ("I think I OD'd", "i think i overdosed"),
        ("unconcious", "unconscious"),
        ("suicidial", "suicidal"),
        ("i want to kill my self", "i want to kill myself"),
        ("cant breath", "can not breathe"),
        ("i wanna die rn", "i want to die right now"),
    ],
)
def test_project_rewrites(screen: RiskScreen, text: str, expected: str) -> None:
    assert screen.normalise(text).text == expected
