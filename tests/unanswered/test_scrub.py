"""Personal data is replaced before a question is kept."""

from __future__ import annotations

import pytest

from bot.unanswered.scrub import MAX_TEXT_LENGTH, has_words, scrub_personal_data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Emails and phone numbers (the definitions in bot/contact.py), every one of them.
        ("email me at jane.doe@example.org", "email me at [EMAIL]"),
        ("a@b.com or c.d@e.co.uk?", "[EMAIL] or [EMAIL]?"),
        ("call 555 123 4567 or +44 20 7946 0958", "call [PHONE] or [PHONE]"),
        ("my number is (555) 123-4567.", "my number is [PHONE]."),
        ("in 2024 the FDA said no", "in 2024 the FDA said no"),
        ("see https://www.facebook.com/jane.doe please", "see [LINK] please"),
        ("dm me @sarah_j92 on insta", "dm me [NAME] on insta"),
        # Names after a cue, whatever their case.
        ("My name is Sarah Jones and I want to know about MDMA", "My name is [NAME] and I want to know about MDMA"),
        ("my name is tom, is it legal?", "my name is [NAME], is it legal?"),
        ("Hi, I'm called Ana. Is MDMA legal in Australia?", "Hi, I'm called [NAME]. Is MDMA legal in Australia?"),
        ("call me Ishmael", "call me [NAME]"),
        ("call me back on 555 123 4567 please", "call me back on [PHONE] please"),
        # Titles.
        ("Dr. Smith said psilocybin works better", "Dr. [NAME] said psilocybin works better"),
        ("my therapist dr jones says no", "my therapist dr [NAME] says no"),
        ("my therapist Dr Sarah Jones says it's risky", "my therapist Dr [NAME] says it's risky"),
        # Capitalised words that do not start a sentence.
        ("Can Ana come with me to the session?", "Can [NAME] come with me to the session?"),
        ("my doctor, Anna, thinks I could qualify", "my doctor, [NAME], thinks I could qualify"),
        ("Ask Bob's wife", "Ask [NAME]'s wife"),
        ("Hello, Peter here", "Hello, [NAME] here"),
        # A name at the start of a sentence when the next word shows it.
        ("Sarah Jones here, can I join a trial?", "[NAME] here, can I join a trial?"),
        ("Mike told me it's legal in the UK", "[NAME] told me it's legal in the UK"),
        # Domain terms, acronyms and common words stay.
        ("Is it covered by Medicare or the VA?", "Is it covered by Medicare or the VA?"),
        ("What Is MDMA-Assisted Therapy", "What Is MDMA-Assisted Therapy"),
        ("Does Lykos still run trials in Canada?", "Does Lykos still run trials in Canada?"),
        ("I've had SSRIs and EMDR. Will it hurt?", "I've had SSRIs and EMDR. Will it hurt?"),
        ("is MDMA legal in the US or the UK since June?", "is MDMA legal in the US or the UK since June?"),
        # Everything at once.
        (
            "What about psilocybin? Write to jane.doe@example.org or 555 123 4567. Dr Sarah Jones told me.",
            "What about psilocybin? Write to [EMAIL] or [PHONE]. Dr [NAME] told me.",
        ),
        # Whitespace and control characters are tidied.
        ("  what\tabout\n\nit \x07 ", "what about it"),
    ],
)
def test_scrubs_personal_data(text: str, expected: str) -> None:
    assert scrub_personal_data(text) == expected


def test_an_unknown_capitalised_word_mid_sentence_is_removed_to_be_safe() -> None:
    assert scrub_personal_data("what about Kratom?") == "what about [NAME]?"


def test_long_text_is_cut_after_scrubbing() -> None:
    scrubbed = scrub_personal_data("is it legal " * 100 + "write to jane@example.org")
    assert len(scrubbed) == MAX_TEXT_LENGTH
    assert scrubbed.endswith("…")
    assert "@" not in scrubbed


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[EMAIL] [PHONE]", False), ("[NAME]!!! 123", False), ("what about [NAME]", True), ("ok", True)],
)
def test_has_words_ignores_placeholders(text: str, expected: bool) -> None:
    assert has_words(text) is expected
