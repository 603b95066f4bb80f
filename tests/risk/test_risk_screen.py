"""Behaviour of the risk screen: negation, idioms, questions, spelling, robustness."""

from __future__ import annotations

from typing import Optional

import pytest

from bot.risk import Category, Level, RiskScreen


def _flag(screen: RiskScreen, text: Optional[str]) -> Optional[str]:
    decision = screen.screen(text)
    return None if decision is None else f"{decision.level.value}/{decision.category.value}"


@pytest.mark.parametrize(
    "text, expected",
    [
        # A negation elsewhere, or one that is itself the risk, must not hide it.
        ("I'm not ok, I want to die", "priority/suicide"),
        ("im not ok i want to die", "priority/suicide"),
        ("I don't want to live", "priority/suicide"),
        ("I dont want to be alive anymore", "priority/suicide"),
        ("I can't stay safe", "urgent/suicide"),
        ("I don't feel safe at home", "priority/abuse_danger"),
        ("I can't go on", "priority/suicide"),
        ("I can't stop thinking about killing myself", "priority/suicide"),
        ("my friend isn't breathing", "urgent/medical_emergency"),
        ("he won't wake up", "urgent/medical_emergency"),
        ("I'm not safe", "urgent/abuse_danger"),
        ("nobody would care if I died", "priority/suicide"),
        # A negation of the risk itself cancels it.
        ("I'm not suicidal", None),
        ("I don't want to die", None),
        ("I would never kill myself", None),
        ("I'm not going to hurt myself", None),
        ("I have no plans to hurt myself", None),
        ("I don't have suicidal thoughts", None),
        ("I'm not in danger", None),
        ("I'm not being abused", None),
    ],
)
def test_negation(screen: RiskScreen, text: str, expected: Optional[str]) -> None:
    assert _flag(screen, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "this wait is killing me",
        "I killed it at work",
        "dying to know",
        "I'm dying to know when it gets approved",
        "I'd kill for a coffee",
        "my feet are killing me",
        "I want to die of embarrassment",
        "I nearly died laughing",
        "bored to death",
        "I cut myself some slack",
        "I cut myself shaving",
        "that really hurt my feelings",
        "I overdosed on chocolate this weekend",
        "she killed it on stage",
        "my phone died",
        "hit me up later",
        "shoot me an email",
        "my mom would kill me if she found out",
    ],
)
def test_idioms_are_not_risk(screen: RiskScreen, text: str) -> None:
    assert screen.screen(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "can you die from MDMA?",
        "is it addictive?",
        "can it make suicidal thoughts worse?",
        "what happens if you overheat on molly?",
        "does MDMA cause seizures",
        "are people with suicidal thoughts excluded from trials",
        "what are the risks of overdose",
        "what if I overheat?",
        "can I overdose on it?",
        "what should I do if my friend overdoses?",
        "will I feel suicidal after the session?",
        "what if I have a panic attack during the session?",
        "How do I know if someone is overheating?",
    ],
)
def test_general_questions_are_not_risk(screen: RiskScreen, text: str) -> None:
    assert screen.screen(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I took molly and my chest hurts", "urgent/medical_emergency"),
        ("my friend overdosed and won't wake up", "urgent/medical_emergency"),
        ("can you die from this? I took 5 pills an hour ago", "urgent/medical_emergency"),
        ("can you die from this I took 5 pills an hour ago", "urgent/medical_emergency"),
        ("am I overdosing?", "urgent/medical_emergency"),
        ("should I kill myself?", "urgent/suicide"),
        ("what if I just killed myself", "priority/suicide"),
        ("Can MDMA make my suicidal thoughts worse? I have them every day", "priority/suicide"),
        ("my sister is suicidal", "priority/suicide"),
        ("my son is cutting himself", "priority/self_harm"),
    ],
)
def test_personal_situations_are_risk_even_when_asked(screen: RiskScreen, text: str, expected: str) -> None:
    assert _flag(screen, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I tried to kill myself ten years ago, can I still join a trial?",
        "I used to self harm as a teenager",
        "My dad used to hit me growing up",
        "I overdosed back in 2015 and quit drugs",
        "I was suicidal years ago but I'm fine now",
        "I had a seizure as a kid",
    ],
)
def test_the_distant_past_is_not_current_risk(screen: RiskScreen, text: str) -> None:
    assert screen.screen(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I was abused as a kid and now my husband hits me", "priority/abuse_danger"),
        ("I tried to kill myself years ago and I want to die again", "priority/suicide"),
    ],
)
def test_the_past_does_not_hide_the_present(screen: RiskScreen, text: str, expected: str) -> None:
    assert _flag(screen, text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("suicde", None),
        ("I want to commit suicde", "urgent/suicide"),
        ("Im gonna kil myself", "urgent/suicide"),
        ("i wanna die", "priority/suicide"),
        ("i think i od'd", "urgent/medical_emergency"),
        ("I think I OD'd on molly", "urgent/medical_emergency"),
        ("my friend overdosed", "urgent/medical_emergency"),
        ("im not ok i dont want to live", "priority/suicide"),
        ("i cant stay safe", "urgent/suicide"),
        ("I WANT TO DIEEEE", "priority/suicide"),
        ("i want to kill myslef", "urgent/suicide"),
        ("i want to kill my self", "urgent/suicide"),
        ("my friend is unconcious", "urgent/medical_emergency"),
        ("I\u2019m going to kill myself", "urgent/suicide"),
        ("i really wanna die rn", "urgent/suicide"),
        ("i want to unalive myself", "urgent/suicide"),
    ],
)
def test_misspellings_slang_and_missing_apostrophes(screen: RiskScreen, text: str, expected: Optional[str]) -> None:
    assert _flag(screen, text) == expected


@pytest.mark.parametrize(
    "text, level, escalated_by",
    [
        ("I want to die tonight", Level.URGENT, "escalator.now"),
        ("I want to die and I have a plan", Level.URGENT, "escalator.plan_or_means"),
        ("I want to die but I don't have a plan", Level.PRIORITY, None),
        ("I want to hurt myself right now", Level.URGENT, "escalator.now"),
        ("I'm scared of my husband and he's outside", Level.URGENT, "escalator.abuser_present"),
        ("I'm having a panic attack right now", Level.PRIORITY, None),
    ],
)
def test_immediacy_plan_or_means_escalate(
    screen: RiskScreen, text: str, level: Level, escalated_by: Optional[str]
) -> None:
    decision = screen.screen(text)
    assert decision is not None
    assert (decision.level, decision.escalated_by) == (level, escalated_by)


def test_the_most_urgent_match_wins(screen: RiskScreen) -> None:
    decision = screen.screen("I'm having a panic attack and I took too many pills")
    assert decision is not None
    assert (decision.level, decision.category) == (Level.URGENT, Category.MEDICAL_EMERGENCY)


@pytest.mark.parametrize(
    "text, words",
    [
        ("Hi. I want to kill myself", "I want to kill myself"),
        ("ok so\u2026 im gonna kms", "im gonna kms"),
        ("\U0001f62d\U0001f62d i want to dieeee \U0001f62d", "i want to dieeee"),
        ("My friend   OD\u2019d!!!", "My friend   OD\u2019d"),
    ],
)
def test_offsets_point_into_the_original_text(screen: RiskScreen, text: str, words: str) -> None:
    decision = screen.screen(text)
    assert decision is not None
    assert text[decision.start : decision.end] == words


@pytest.mark.parametrize(
    "text",
    [None, "", " ", "\n\t", "\x00\x01\x02", "\U0001f600\U0001f44d", "?!?!", "\u200b\u200b"],
)
def test_empty_and_odd_text_is_not_risk(screen: RiskScreen, text: Optional[str]) -> None:
    screening = screen.analyse(text)
    assert screening.decision is None
    assert screening.informational is False


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\U0001f62d\U0001f62d i want to die \U0001f62d", "priority/suicide"),
        ("i\x00 want\x07 to\x1b die", "priority/suicide"),
        ("I\u00a0want\u00a0to\u00a0die", "priority/suicide"),
        ("\uff29 \uff57\uff41\uff4e\uff54 \uff54\uff4f \uff44\uff49\uff45", "priority/suicide"),
        ("i want to d\u200bie", "priority/suicide"),
    ],
)
def test_emoji_control_and_unicode_characters(screen: RiskScreen, text: str, expected: str) -> None:
    assert _flag(screen, text) == expected


def test_huge_text_with_risk_at_the_end(screen: RiskScreen) -> None:
    filler = "I have questions about how the sessions work and who is there. "
    text = (filler * 200)[:9_970] + " I want to die"
    assert len(text) >= 9_980
    decision = screen.screen(text)
    assert decision is not None
    assert text[decision.start : decision.end] == "I want to die"


def test_huge_text_without_risk(screen: RiskScreen) -> None:
    text = ("What happens during the integration sessions? " * 250)[:10_000]
    assert screen.screen(text) is None


@pytest.mark.parametrize(
    "text, informational",
    [
        ("can you die from MDMA?", True),
        ("is it addictive?", True),
        ("what are the risks of overdose", True),
        ("I was wondering, can MDMA cause seizures?", True),
        ("tell me about the risks", True),
        ("can you die from this? I took 5 pills an hour ago", False),
        ("am I overdosing?", False),
        ("everything is falling apart", False),
        ("I feel awful", False),
        ("what's the point anymore", False),
        ("", False),
    ],
)
def test_informational_questions(screen: RiskScreen, text: str, informational: bool) -> None:
    assert screen.analyse(text).informational is informational


@pytest.mark.parametrize(
    "text, category",
    [
        ("everything feels hopeless and pointless", Category.SUICIDE),
        ("the panic and the flashbacks", Category.ACUTE_CRISIS),
        ("my chest and my heart", Category.MEDICAL_EMERGENCY),
        ("hello there", None),
    ],
)
def test_cue_category(screen: RiskScreen, text: str, category: Optional[Category]) -> None:
    assert screen.analyse(text).cue_category == category


def test_decision_as_dict(screen: RiskScreen) -> None:
    decision = screen.screen("I want to kill myself")
    assert decision is not None
    assert decision.as_dict() == {
        "level": "urgent",
        "category": "suicide",
        "rule": "suicide.intent",
        "start": 0,
        "end": 21,
        "escalated_by": None,
    }
