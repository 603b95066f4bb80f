"""The spaCy layer of the risk screen: tokens, lemmas and pattern matches.

The pipeline is `spacy.blank("en")` plus the lookup lemmatizer from
spacy-lookups-data: no statistical model, nothing downloaded, a few tens of
microseconds per message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, FrozenSet, Iterable, List, Sequence, Tuple

from bot.risk.patterns import Pattern, PatternBook, SpecKind, TokenSpec

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.matcher import Matcher
    from spacy.pipeline import Lemmatizer

_KEY_SEPARATOR = "#"
_Trigger = Tuple[FrozenSet[str], ...]
_NUMBER_KEY = "#number"
# How many of a pattern's required words are checked before its matcher runs.
_TRIGGER_SPECS = 3
DISTANT_PAST = "grammar.distant_past"


@dataclass(frozen=True)
class Token:
    """The parts of a spaCy token the screen's context logic reads."""

    lemma: str
    form: str
    start: int
    end: int
    is_punct: bool
    is_break: bool
    is_question_mark: bool


@dataclass(frozen=True)
class RawMatch:
    """One pattern found in a message, before any context check."""

    key: str
    start: int
    end: int
    gap_tokens: Tuple[int, ...]
    anchored: bool


def _build_pipeline() -> Language:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    # Loads the lookup table from the installed spacy-lookups-data package.
    nlp.initialize()
    return nlp


def _compile(spec: TokenSpec, lemma_of: "_LemmaLookup") -> List[Dict[str, object]]:
    if spec.kind is SpecKind.GAP:
        return [{"IS_PUNCT": False, "IS_SPACE": False, "OP": "?"}] * spec.gap
    if spec.kind is SpecKind.NUMBER:
        token: Dict[str, object] = {"LIKE_NUM": True}
    elif spec.kind is SpecKind.YEAR:
        token = {"TEXT": {"REGEX": r"^(19|20)\d\d$"}}
    elif spec.kind is SpecKind.FORM:
        token = {"NORM": {"IN": sorted(set(spec.words))}}
    else:
        lemmas = {lemma_of(word) for word in spec.words} | set(spec.words)
        token = {"LEMMA": {"IN": sorted(lemmas)}}
    if spec.optional:
        token["OP"] = "?"
    return [token]


def _gap_flags(pattern: Pattern) -> Tuple[bool, ...]:
    flags: List[bool] = []
    for spec in pattern.specs:
        flags.extend([spec.kind is SpecKind.GAP] * (spec.gap or 1))
    return tuple(flags)


class _LemmaLookup:
    """Lemma of a single lower-case word, the same way tokens get theirs."""

    def __init__(self, nlp: Language, overrides: Dict[str, str]) -> None:
        lemmatizer: Lemmatizer = nlp.get_pipe("lemmatizer")  # type: ignore[assignment]
        self._table = lemmatizer.lookups.get_table("lemma_lookup")
        self._overrides = overrides
        self._lemmas: FrozenSet[str] = frozenset(self._table.values())

    def __call__(self, word: str) -> str:
        override = self._overrides.get(word)
        if override is not None:
            return override
        return str(self._table.get(word, word))

    def is_inflection_or_lemma(self, word: str) -> bool:
        return word in self._table or word in self._lemmas


def _spec_keys(spec: TokenSpec, lemma_of: "_LemmaLookup") -> FrozenSet[str]:
    """Index keys of the tokens a required spec can match."""
    if spec.kind in (SpecKind.NUMBER, SpecKind.YEAR):
        return frozenset({_NUMBER_KEY})
    if spec.kind is SpecKind.FORM:
        return frozenset(f"F:{word}" for word in spec.words)
    return frozenset(f"L:{w}" for word in spec.words for w in (word, lemma_of(word)))


class RiskMatcher:
    """Tokenises normalised text and finds every pattern of a `PatternBook`.

    Building it loads the spaCy pipeline and compiles all patterns, so build it
    once (the Rasa component does so in `create`) and reuse it.

    Running a thousand patterns with gaps through one spaCy `Matcher` costs a
    few milliseconds per message. Each pattern is therefore filed under its most
    selective required words ("suicidal" rather than "i"); patterns filed under
    the same words share a `Matcher`, and a message only runs the matchers whose
    required words it contains.
    """

    def __init__(self, book: PatternBook) -> None:
        from spacy.lang.en.stop_words import STOP_WORDS

        self._nlp = _build_pipeline()
        self._overrides = dict(book.lemma_overrides)
        self._lemma_of = _LemmaLookup(self._nlp, self._overrides)
        self._known = frozenset(STOP_WORDS) | book.vocabulary() | set(self._overrides)
        self._common = frozenset(STOP_WORDS)
        self._matchers: List[Matcher] = []
        self._index: Dict[str, List[int]] = {}
        self._triggers: List[_Trigger] = []
        self._patterns: Dict[str, Tuple[Tuple[bool, ...], bool]] = {}
        named = [(r.id, r.patterns) for r in book.rules]
        named += [(m.id, m.patterns) for m in (*book.idioms, *book.signals, *book.escalators)]
        named.append((DISTANT_PAST, book.grammar.distant_past))
        self._build(named)

    @property
    def pattern_count(self) -> int:
        """How many compiled patterns the matcher runs (after `%phrase` expansion)."""
        return len(self._patterns)

    def _trigger(self, pattern: Pattern) -> _Trigger:
        """The pattern's most selective required specs, as sets of index keys."""
        required = [spec for spec in pattern.specs if spec.kind is not SpecKind.GAP and not spec.optional]

        def cost(spec: TokenSpec) -> int:
            if spec.kind in (SpecKind.NUMBER, SpecKind.YEAR):
                return 60
            return sum(50 if word in self._common else 1 for word in spec.words)

        keys = [_spec_keys(spec, self._lemma_of) for spec in sorted(required, key=cost)]
        return tuple(dict.fromkeys(keys))[:_TRIGGER_SPECS]

    def _build(self, named: Sequence[Tuple[str, Iterable[Pattern]]]) -> None:
        from spacy.matcher import Matcher

        # One matcher key per pattern: alignments are only meaningful per pattern.
        by_trigger: Dict[_Trigger, List[Tuple[str, Pattern]]] = {}
        for name, patterns in named:
            for index, pattern in enumerate(patterns):
                key = f"{name}{_KEY_SEPARATOR}{index}"
                by_trigger.setdefault(self._trigger(pattern), []).append((key, pattern))
        for trigger, members in by_trigger.items():
            matcher = Matcher(self._nlp.vocab, validate=True)
            for key, pattern in members:
                compiled = [t for spec in pattern.specs for t in _compile(spec, self._lemma_of)]
                matcher.add(key, [compiled])
                self._patterns[key] = (_gap_flags(pattern), pattern.anchored)
            for trigger_key in trigger[0]:
                self._index.setdefault(trigger_key, []).append(len(self._matchers))
            self._matchers.append(matcher)
            self._triggers.append(trigger)

    def is_known_word(self, word: str) -> bool:
        """True for real English words, which the normaliser must not "correct"."""
        return word in self._known or self._lemma_of.is_inflection_or_lemma(word)

    def lemma(self, word: str) -> str:
        """The lemma the matcher uses for a single lower-case word."""
        return self._lemma_of(word)

    def parse(self, text: str) -> Tuple[List[Token], List[RawMatch]]:
        """Tokens of `text` (already normalised) and all raw pattern matches."""
        doc = self._nlp(text)
        tokens: List[Token] = []
        keys = set()
        for t in doc:
            override = self._overrides.get(t.text)
            if override is not None:
                t.lemma_ = override
            lemma, form = t.lemma_, t.norm_
            keys.add(f"L:{lemma}")
            keys.add(f"F:{form}")
            if t.like_num:
                keys.add(_NUMBER_KEY)
            tokens.append(
                Token(
                    lemma=lemma,
                    form=form,
                    start=t.idx,
                    end=t.idx + len(t.text),
                    is_punct=t.is_punct,
                    is_break=t.is_space and "\n" in t.text,
                    is_question_mark=t.text.startswith("?"),
                )
            )
        candidates = sorted(
            m
            for m in {m for key in keys for m in self._index.get(key, ())}
            if all(not required.isdisjoint(keys) for required in self._triggers[m][1:])
        )
        matches = []
        strings = self._nlp.vocab.strings
        for position in candidates:
            found: List[Tuple[int, int, int, List[int]]] = self._matchers[position](doc, with_alignments=True)  # type: ignore[assignment]
            for match_id, start, end, alignment in found:
                key = strings[match_id]
                flags, anchored = self._patterns[key]
                if flags[alignment[0]] or flags[alignment[-1]]:
                    continue
                gaps = tuple(start + i for i, spec in enumerate(alignment) if flags[spec])
                name = key.rsplit(_KEY_SEPARATOR, 1)[0]
                matches.append(RawMatch(name, start, end, gaps, anchored))
        return tokens, matches
