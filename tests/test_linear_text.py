"""Text handling on the message path takes time linear in the message.

No timings here (they belong in `python -m bench worst-case`): the patterns are
audited one by one, and the risk screen's work is counted in token reads.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, List, Tuple

import pytest
import re2

from bot.risk import RiskScreen
from bot.risk.matcher import RawMatch, RiskMatcher, Token

# Every Python `re` pattern compiled by a module on the message path, with why
# it cannot backtrack more than a constant per character. Anything else must
# be RE2 (`import re2`), which never backtracks.
AUDITED_PATTERNS = {
    # bot.contact
    r"\+?\(?[0-9]+\)?(?:[ \u00a0.\-]?\(?[0-9]+\)?)*": (
        "nothing follows the repetition: the first greedy attempt succeeds, no backtracking"
    ),
    # bot.unanswered.scrub
    r"\b(?:https?://|www\.)\S+": "a literal start, then one greedy class to the end of the token",
    r"(?<![\w@])@\w{2,}": "one greedy class after a literal",
    r"[A-Z]{2,5}s?": "bounded, used with fullmatch on one word",
    r"[.!?:\n]": "a single character",
    r"\[NAME\](?:[\s-]+\[NAME\])+": "a literal must follow each separator run; runs are disjoint",
    r"\s+": "a single class",
    r"[\x00-\x08\x0b-\x1f\x7f]": "a single character",
    r"['’]s$": "two characters, searched in one word",
    r"\[(?:EMAIL|PHONE|NAME|LINK)\]|[^\W\d_]+(?:['’][^\W\d_]+)*": (
        "a placeholder, or letters and apostrophes alternating: no two ways to split a run"
    ),
    # bot.unanswered.grouping
    r"[\s?!.,;:]+$": "searched in a scrubbed text of at most 500 characters",
    # bot.risk.normalise
    r"[\x00-\x09\x0b-\x1f\x7f]": "a single character",
    r"(\S)\1{2,}|\s{2,}": "a back-reference to one character, then one greedy run",
    r"[a-z]+(?:'[a-z]+)?": "letters, one optional apostrophe part",
    r"(?<=[a-z])-(?=[a-z])": "one character with one-character look-arounds",
    r"([a-z])\1": "two characters",
    # bot.nlu.retrieval_buttons
    r"^/(?P<intent>[A-Za-z0-9_-]+)/(?P<response>[A-Za-z0-9_-]+)$": "anchored, classes split by a literal",
}
AUDITED_PREFIXES = {
    r"\b(?:my\s+name\s+is": "a cue phrase searched only in the 30 characters before a word",
    r"(?<![a-z0-9'])(?:": "an alternation of literal phrases after a look-behind of one character",
}
MESSAGE_PATH_MODULES = [
    "bot.contact",
    "bot.nlp",
    "bot.unanswered.scrub",
    "bot.unanswered.grouping",
    "bot.unanswered.decision",
    "bot.risk.normalise",
    "bot.risk.matcher",
    "bot.risk.screen",
    "bot.nlu.retrieval_buttons",
    "bot.nlu.contact_detail_classifier",
    "bot.nlu.no_words_classifier",
    "bot.nlu.safety_screen",
    "bot.nlu.faq_confidence_gate",
    "bot.nlu.linear_intent_classifier",
    "bot.nlu.linear_scorer",
]


def _compiled_patterns(value: Any) -> List[Any]:
    if isinstance(value, (re.Pattern, re2._Regexp)):
        return [value]
    return []


@pytest.mark.parametrize("module_name", MESSAGE_PATH_MODULES)
def test_every_pattern_on_the_message_path_is_re2_or_audited(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        for pattern in _compiled_patterns(value):
            if isinstance(pattern, re2._Regexp):
                continue
            source = pattern.pattern
            audited = source in AUDITED_PATTERNS or any(source.startswith(p) for p in AUDITED_PREFIXES)
            assert audited, f"{module_name}.{name} = {source!r} is neither RE2 nor audited as linear"


def test_the_email_pattern_is_re2() -> None:
    from bot import contact

    assert isinstance(contact._EMAIL, re2._Regexp)


class _CountingTokens(list):
    """A token list that counts reads by index (iteration is linear anyway)."""

    reads = 0

    def __getitem__(self, index: Any) -> Any:
        _CountingTokens.reads += 1
        return super().__getitem__(index)


@pytest.fixture(scope="module")
def screen() -> RiskScreen:
    return RiskScreen.load()


def _token_reads(screen: RiskScreen, text: str, monkeypatch: pytest.MonkeyPatch) -> int:
    parse = RiskMatcher.parse

    def counting_parse(self: RiskMatcher, normalised: str) -> Tuple[List[Token], List[RawMatch]]:
        tokens, matches = parse(self, normalised)
        return _CountingTokens(tokens), matches

    monkeypatch.setattr(RiskMatcher, "parse", counting_parse)
    _CountingTokens.reads = 0
    screen.analyse(text)
    monkeypatch.setattr(RiskMatcher, "parse", parse)
    return _CountingTokens.reads


@pytest.mark.parametrize(
    "unit",
    [
        "kill myself ",
        "if i want to die, i ",
        "years ago i wanted to die and ",
        "dying of embarrassment, i want to kill myself ",
        "so so so i can't go on ",
        "what if i overdose ",
        "i might hurt myself, who do i call ",
    ],
)
def test_the_risk_screens_work_grows_linearly_with_the_message(
    screen: RiskScreen, unit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = _token_reads(screen, unit * 100, monkeypatch)
    long = _token_reads(screen, unit * 400, monkeypatch)

    assert long <= 4 * short * 1.25, (short, long)
