"""Risk as people really write it, and the look-alikes each of those rules must leave alone.

Every rule and idiom added for these shapes has positives (level, category, the rule
that fires) and look-alikes here; the development set (dev_cases.yml) has more.
"""

from __future__ import annotations

from typing import Optional

import pytest

from bot.risk import RiskScreen

TOXICITY = "urgent/medical_emergency/medical_emergency.severe_after_substance"


def _flag(screen: RiskScreen, text: str) -> Optional[str]:
    decision = screen.screen(text)
    return None if decision is None else f"{decision.level.value}/{decision.category.value}/{decision.rule}"


@pytest.mark.parametrize(
    "text, expected",
    [
        # An overdose planned as a question about one's own prescription.
        ("how many of my seroquel would make me not wake up", "urgent/suicide/suicide.lethal_amount"),
        ("would my whole box of sleeping pills be enough to die", "urgent/suicide/suicide.lethal_amount"),
        ("I have 90 of my diazepam put aside", "urgent/suicide/suicide.lethal_amount"),
        ("I've been saving up months of my tramadol", "urgent/suicide/suicide.lethal_amount"),
        ("would a pack of my zopiclone be too much to come back from", "urgent/suicide/suicide.lethal_amount"),
        ("if I took them all at once would that be it", "urgent/suicide/suicide.take_them_all"),
        ("what if I mixed all of them with wine, would I sleep forever", "urgent/suicide/suicide.take_them_all"),
        # Firearm slang and means at hand.
        ("my glock is in my hand right now", "urgent/suicide/suicide.firearm_ready"),
        ("I loaded my revolver an hour ago", "urgent/suicide/suicide.firearm_ready"),
        ("gonna eat my gun", "urgent/suicide/suicide.firearm_ready"),
        # Hopelessness with a day attached, tucked into an ordinary question.
        ("is there a payment plan? I won't need one after saturday", "urgent/suicide/suicide.ending_dated"),
        ("what's the earliest start date? I won't be around past next week", "urgent/suicide/suicide.plan_or_means"),
        ("there's no point in starting anything after tonight", "urgent/suicide/suicide.ending_dated"),
        ("I put up the rope in the attic", "urgent/suicide/suicide.ending_dated"),
        ("how long are the sessions? doubt I'll be here that long", "priority/suicide/suicide.not_around_for_it"),
        ("not that I'll still be alive by then", "priority/suicide/suicide.not_around_for_it"),
        ("there's no point in any more therapy for me", "priority/suicide/suicide.not_around_for_it"),
        ("where's the nearest clinic? pointless really, I won't be alive", "priority/suicide/suicide.not_here_anyway"),
        # Goodbyes for good, and possessions given away.
        ("thanks for everything. let dad know I love him. bye", "priority/suicide/suicide.farewell"),
        ("tell my wife it was never her fault. goodbye", "urgent/suicide/suicide.farewell"),
        ("nobody will hear from me again", "priority/suicide/suicide.farewell"),
        ("I gave all my guitars away to my nephew", "priority/suicide/suicide.giving_away"),
        ("giving away my stuff and I wrote a note", "urgent/suicide/suicide.giving_away"),
        ("found a new home for my rabbit so she's looked after", "priority/suicide/suicide.giving_away"),
        # Self-harm and violence described in passing.
        ("I've got new burns on my arm, will the doctors see them", "priority/self_harm/self_harm.fresh_wounds"),
        ("i hit my head on the bathroom floor till it bleeds", "priority/self_harm/self_harm.hitting_things"),
        ("punching the mirror till my knuckles split", "priority/self_harm/self_harm.hitting_things"),
        ("I smack my kids when the rage comes", "priority/harm_to_others/harm_to_others.thoughts"),
        ("i nearly strangled him in my sleep", "priority/harm_to_others/harm_to_others.thoughts"),
        ("my mum throws things at my face", "priority/abuse_danger/abuse_danger.ongoing_abuse"),
        ("he gets violent", "priority/abuse_danger/abuse_danger.ongoing_abuse"),
        ("she said she'd hurt me if I told anyone", "urgent/abuse_danger/abuse_danger.danger_now"),
        ("he'll do worse if I report him", "priority/abuse_danger/abuse_danger.ongoing_abuse"),
        # Stimulant toxicity asked as "is this normal?".
        ("heart pounding and can't stop grinding my teeth 4 hours after a bean, normal?", TOXICITY),
        ("is it normal to be unable to pee after molly", TOXICITY),
        ("my pulse is at 150 since rolling, is that ok", TOXICITY),
        ("running a fever since the festival, could it be the pills?", TOXICITY),
    ],
)
def test_real_writing_is_flagged(screen: RiskScreen, text: str, expected: str) -> None:
    assert _flag(screen, text) == expected, screen.explain(text)


@pytest.mark.parametrize(
    "text",
    [
        # suicide.lethal_amount / take_them_all: dosing and safety questions.
        "how much of my sertraline should I stop before the trial?",
        "how much of my therapy will it take before I never wake up in a panic",
        "do I take all my blood pressure meds on the dosing day?",
        "I've saved up six months of my pay for this",
        "is one pill of MDMA enough to cause an overdose?",
        # suicide.firearm_ready: owning a gun is not having it ready.
        "I own a pistol for work, does the clinic need to know?",
        "my dad keeps his rifle locked in a safe",
        # suicide.ending_dated / not_around_for_it: away, busy, or just impatient.
        "I won't be here after friday because I'm on holiday, can we talk next month?",
        "I won't be around next week as I'm visiting my sister",
        "I'm in this for the long haul, happy to wait for approval",
        "is there any point in treatment if I'm already on SSRIs?",
        "the climbing rope is in the garage",
        "I won't be here next week anyway because I'm on a work trip",
        "I won't be around on monday, does that matter for booking?",
        # suicide.farewell / giving_away: ordinary goodbyes and donations.
        "cheers for the info, bye!",
        "tell my therapist I'm sorry I missed the appointment, bye",
        "please tell my mum I love her cooking",
        "we're giving away the kids' old bikes to charity",
        "I gave away my tickets to the conference",
        # self_harm: frustration idioms and accidents.
        "I've been banging my head against a wall with this insurance paperwork",
        "I fell and hit my head on the floor, is MDMA still safe for me?",
        "I have a fresh cut from the oven door",
        "I'm pulling my hair out over these forms",
        # harm_to_others / abuse: other people's things, parties, sport.
        "I hit my sister's car reversing",
        "my flatmate threw a party at my flat",
        "she gets so excited about the trial",
        # medical: general questions about effects.
        "is it normal to feel cold after MDMA?",
        "what heart rate is normal during a dosing session?",
        "can MDMA make it hard to pee?",
        # Idioms.
        "really shot myself in the foot forgetting to send the form",
        "my heart skipped a beat when the clinic called",
        "that bill nearly gave me a heart attack",
        "my mum will kill me if I waste my birthday money on this",
        "I work in an ER and treat overdoses every week, how is the trial dose different?",
    ],
)
def test_lookalikes_of_real_writing_are_not_flagged(screen: RiskScreen, text: str) -> None:
    assert screen.screen(text) is None, screen.explain(text)


def test_a_threat_for_telling_stays_a_risk_while_hyperbole_does_not(screen: RiskScreen) -> None:
    assert _flag(screen, "he'll kill me if I leave him") == "priority/abuse_danger/abuse_danger.ongoing_abuse"
    assert screen.screen("she'll kill me if I forget our anniversary again") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        # A negation does not reach across "since"/"after": the substance still counts.
        ("haven't slept since taking molly and I feel really hot", "urgent/medical_emergency"),
        ("can't pee since rolling last night", "urgent/medical_emergency"),
        # A negation in front of the substance still denies it.
        ("I didn't take any molly, I just feel really hot", None),
    ],
)
def test_negation_does_not_reach_past_since_or_after(screen: RiskScreen, text: str, expected: Optional[str]) -> None:
    decision = screen.screen(text)
    assert (None if decision is None else f"{decision.level.value}/{decision.category.value}") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("how do the therapists calm someone having a flashback?", None),
        ("what do they do with patients having a panic attack in the session?", None),
        ("someone is having a seizure next to me, what do I do?", "urgent/medical_emergency"),
        ("my friend having a seizure, what do I do?", "urgent/medical_emergency"),
    ],
)
def test_nobody_in_particular_inside_a_question_is_general(
    screen: RiskScreen, text: str, expected: Optional[str]
) -> None:
    decision = screen.screen(text)
    assert (None if decision is None else f"{decision.level.value}/{decision.category.value}") == expected


@pytest.mark.parametrize(
    "text",
    [
        "I felt suicidal a while back, can I still apply?",
        "I was suicidal before my treatment started, am I eligible?",
        "I've been suicidal before, does that rule me out?",
        "I hit my brother when we were kids",
    ],
)
def test_the_past_asked_about_for_eligibility_is_not_risk(screen: RiskScreen, text: str) -> None:
    assert screen.screen(text) is None, screen.explain(text)
