"""The deterministic risk screen: patterns found, then checked against their context.

A pattern match only counts if
- it is not negated ("I'm not suicidal"), unless the negation is part of the
  pattern itself ("I don't want to live");
- it is not part of an idiom ("dying of embarrassment");
- for rules whose context is `current` or `situation`: it is not about the
  distant past ("I overdosed years ago");
- for rules whose context is `situation`: it is not inside a hypothetical or a
  general question ("what if I overheat?", "can I overdose on it?");
- the signals the rule requires are present and not negated ("I took molly"
  for "I feel really hot");
- an anchored pattern ("^ want to die") opens its clause.
Of the matches that count, the most urgent wins; ties go to the category listed
first in the pattern book, then to the earliest, then to the longest match.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from bot.risk.matcher import DISTANT_PAST, RawMatch, RiskMatcher, Token
from bot.risk.normalise import NormalisedText, TextNormaliser
from bot.risk.patterns import Category, Context, Level, PatternBook, Rule

_COUNTS = "counts"
# How far before a match a negation still reaches ("not going to kill myself").
_NEGATION_REACH = 3
_BACK_REFERENCES = frozenset({"that", "it", "this", "which", "all"})
# Pronouns that start a new statement inside an unpunctuated question.
_FACT_MARKERS = frozenset({"still", "currently", "already"})
_NEW_SUBJECTS = frozenset({"i", "he", "she", "we", "they"})
# A modal this close before a match makes it a worry about later ("I'll have a ...").
_MODAL_LOOKBACK = 3


@dataclass(frozen=True)
class RiskDecision:
    """What the screen found: how urgent, what kind, which rule, and where."""

    level: Level
    category: Category
    rule: str
    start: int
    end: int
    escalated_by: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        """Plain-dict form for message output and logs."""
        return {
            "level": self.level.value,
            "category": self.category.value,
            "rule": self.rule,
            "start": self.start,
            "end": self.end,
            "escalated_by": self.escalated_by,
        }


@dataclass(frozen=True)
class Screening:
    """Everything the screen learns from one message, from a single parse.

    decision: the risk found, if any.
    informational: the text reads as a general question or request for
        information, with no personal, current situation in it.
    cue_category: the category the message's risk words point to, even when no
        rule matched (used to label a risk the classifier found).
    """

    decision: Optional[RiskDecision]
    informational: bool
    cue_category: Optional[Category]


_PhraseIndex = Dict[str, Tuple[Tuple[str, ...], ...]]
# Per sentence: the ends of its past-time markers (sorted), the smallest start
# from each of them on, and whether one of them refers back.
_PastMarkers = Dict[int, Tuple[List[int], List[int], bool]]


def _index_phrases(phrases: Sequence[Tuple[str, ...]]) -> _PhraseIndex:
    index: Dict[str, Tuple[Tuple[str, ...], ...]] = {}
    for phrase in phrases:
        if phrase:
            index[phrase[0]] = index.get(phrase[0], ()) + (phrase,)
    return index


@dataclass(frozen=True)
class _Parsed:
    """Tokens with their sentences and clauses, and what the checks ask of each position.

    Everything a check would otherwise find by walking through the sentence
    is computed once per message, so that checking every match takes time
    linear in the message however many matches there are.
    """

    tokens: List[Token]
    sentence_of: List[int]
    clause_of: List[int]
    # Per token: index of the first token of its sentence, and one past the last.
    sentence_start: List[int]
    sentence_end: List[int]
    # Per position 0..n: the first index at or after it that is a word (not an
    # opener such as "so", not punctuation); n if none.
    next_word: List[int]
    # Per token: where the statement holding it starts (see `_scope_start`).
    scope_start: List[int]
    # Per position 0..n: the first index at or after it with a conditional or a
    # hypothetical phrase, and with a sign that a question follows.
    next_hypothetical: List[int]
    next_question_sign: List[int]
    # Prefix counts (length n + 1): conditionals, fact markers, new subjects, conjunctions.
    conditionals: List[int]
    fact_markers: List[int]
    new_subjects: List[int]
    conjunctions: List[int]
    # Per sentence: whether it asks something.
    sentence_asks: List[bool]

    def count(self, prefix: List[int], start: int, end: int) -> int:
        """How many of the counted tokens lie in [start, end)."""
        end = min(end, len(self.tokens))
        return prefix[end] - prefix[start] if start < end else 0


class _SpanIndex:
    """Matches sorted by start, to find those overlapping a span without looking at every one."""

    def __init__(self, matches: List[RawMatch]) -> None:
        self._matches = sorted(matches, key=lambda m: m.start)
        self._starts = [m.start for m in self._matches]
        self._longest = max((m.end - m.start for m in self._matches), default=0)

    def overlapping(self, span: RawMatch) -> Iterator[RawMatch]:
        """The matches that share a token with `span`."""
        low = bisect_right(self._starts, span.start - self._longest)
        high = bisect_left(self._starts, span.end)
        for match in self._matches[low:high]:
            if match.end > span.start:
                yield match


def _prefix_counts(flags: Iterable[bool]) -> List[int]:
    counts = [0]
    for flag in flags:
        counts.append(counts[-1] + (1 if flag else 0))
    return counts


def _next_true(flags: Sequence[bool]) -> List[int]:
    """Per position 0..n: the first index at or after it whose flag is set; n if none."""
    n = len(flags)
    following = [n] * (n + 1)
    for index in range(n - 1, -1, -1):
        following[index] = index if flags[index] else following[index + 1]
    return following


class RiskScreen:
    """Screens a message for risk with the rules of a `PatternBook`.

    Construction loads spaCy, builds the pipeline and compiles the patterns (a
    few seconds, once per process); `analyse` and `screen` then take a fraction
    of a millisecond for a typical message. `explain` shows why each match
    counted or not.
    """

    def __init__(self, book: PatternBook) -> None:
        """Builds the matcher and normaliser for `book`."""
        self.book = book
        self._rules: Dict[str, Rule] = {rule.id: rule for rule in book.rules}
        self._idioms = {idiom.id: idiom for idiom in book.idioms}
        self._signals = {signal.id: signal for signal in book.signals}
        self._escalators = {e.id: e for e in book.escalators}
        self._grammar = book.grammar
        self._matcher = RiskMatcher(book)
        self._normaliser = TextNormaliser(book.rewrites, book.fuzzy_targets, self._matcher.is_known_word)
        self._hypothetical_phrases = _index_phrases(book.grammar.hypothetical_phrases)
        self._asking_frames = _index_phrases(book.grammar.asking_frames)
        self._cue_lemmas = {
            category: frozenset(self._matcher.lemma(w) for w in words) | set(words)
            for category, words in book.cues.items()
        }

    @classmethod
    def load(cls, patterns_path: Optional[Union[str, Path]] = None) -> RiskScreen:
        """Builds a screen from a pattern file (the packaged one by default)."""
        return cls(PatternBook.load(patterns_path))

    def normalise(self, text: Optional[str]) -> NormalisedText:
        """The text the patterns see (exposed for debugging and tests)."""
        return self._normaliser.normalise(text)

    def screen(self, text: Optional[str]) -> Optional[RiskDecision]:
        """The risk in `text`, or None."""
        return self.analyse(text).decision

    def analyse(self, text: Optional[str]) -> Screening:
        """Screens `text` and also tells whether it is an informational question."""
        normalised = self._normaliser.normalise(text)
        if not normalised.text.strip():
            return Screening(None, informational=False, cue_category=None)
        tokens, matches = self._matcher.parse(normalised.text)
        parsed = self._segment(tokens)
        decision = self._decide(parsed, matches, normalised)
        return Screening(
            decision=decision,
            informational=self._is_informational(parsed),
            cue_category=self._cue_category(tokens),
        )

    # -- segmentation -----------------------------------------------------------

    def _segment(self, tokens: List[Token]) -> _Parsed:
        sentence_of, clause_of = [], []
        sentence = clause = 0
        for token in tokens:
            sentence_of.append(sentence)
            clause_of.append(clause)
            if token.is_break or (token.is_punct and any(c in ".!?;" for c in token.form)):
                sentence += 1
                clause += 1
            elif (token.is_punct and token.form not in ("'", '"')) or (token.lemma in self._grammar.clause_breaks):
                clause += 1
        n = len(tokens)
        sentence_start, sentence_end = [0] * n, [n] * n
        for index in range(n):
            if index > 0 and sentence_of[index] == sentence_of[index - 1]:
                sentence_start[index] = sentence_start[index - 1]
            else:
                sentence_start[index] = index
        for index in range(n - 2, -1, -1):
            sentence_end[index] = sentence_end[index + 1] if sentence_of[index] == sentence_of[index + 1] else index + 1
        grammar = self._grammar
        next_word = _next_true([not (self._is_opener(t) or t.is_punct) for t in tokens])
        conditional = [t.lemma in grammar.conditionals for t in tokens]
        parsed = _Parsed(
            tokens,
            sentence_of,
            clause_of,
            sentence_start,
            sentence_end,
            next_word,
            scope_start=[],
            next_hypothetical=[],
            next_question_sign=[],
            conditionals=_prefix_counts(conditional),
            fact_markers=_prefix_counts(t.lemma in _FACT_MARKERS for t in tokens),
            new_subjects=_prefix_counts(t.form in _NEW_SUBJECTS for t in tokens),
            conjunctions=_prefix_counts(t.lemma in grammar.clause_breaks and not t.is_punct for t in tokens),
            sentence_asks=[],
        )
        parsed.scope_start.extend(self._scope_starts(parsed))
        parsed.next_hypothetical.extend(
            _next_true(
                [conditional[i] or self._phrase_at(parsed, i, self._hypothetical_phrases) for i in range(n)]
            )
        )
        parsed.next_question_sign.extend(_next_true([self._signals_question(parsed, i) for i in range(n)]))
        parsed.sentence_asks.extend(self._sentences_asking(parsed, sentence + 1))
        return parsed

    def _scope_starts(self, parsed: _Parsed) -> List[int]:
        """`_scope_start` of every token, in one pass."""
        tokens, n = parsed.tokens, len(parsed.tokens)
        # A comma followed by a subject opens a new statement from that subject on.
        opened_at: Dict[int, int] = {}
        for comma, token in enumerate(tokens):
            if token.form != ",":
                continue
            following = parsed.next_word[comma + 1]
            if (
                following < n
                and tokens[following].lemma in self._grammar.subjects
                and parsed.sentence_of[following] == parsed.sentence_of[comma]
            ):
                opened_at[following] = comma
        starts: List[int] = []
        latest_comma = -1
        for index in range(n):
            if index == parsed.sentence_start[index]:
                latest_comma = -1
            latest_comma = max(latest_comma, opened_at.get(index, -1))
            starts.append(max(parsed.sentence_start[index], latest_comma + 1))
        return starts

    def _signals_question(self, parsed: _Parsed, index: int) -> bool:
        """A question mark, or a comma before a question word ("if I..., who do I call")."""
        token = parsed.tokens[index]
        if token.is_question_mark:
            return True
        if token.form != ",":
            return False
        following = parsed.next_word[index + 1]
        return following < len(parsed.tokens) and self._opens_question(parsed.tokens[following])

    def _sentences_asking(self, parsed: _Parsed, sentences: int) -> List[bool]:
        asks = [False] * sentences
        for index, token in enumerate(parsed.tokens):
            sentence = parsed.sentence_of[index]
            if token.is_question_mark:
                asks[sentence] = True
            if index == parsed.sentence_start[index]:
                first = self._first_word(parsed, index, parsed.sentence_end[index])
                if first < parsed.sentence_end[index] and self._opens_question(parsed.tokens[first]):
                    asks[sentence] = True
        return asks

    # -- match checks -----------------------------------------------------------

    def _is_negator(self, parsed: _Parsed, index: int) -> bool:
        token = parsed.tokens[index]
        if token.lemma not in self._grammar.negators and token.form not in (self._grammar.negators):
            return False
        # "can't stop thinking about it" asserts what follows, it does not deny it.
        following = index + 1
        return not (
            following < len(parsed.tokens) and parsed.tokens[following].lemma in self._grammar.negation_cancellers
        )

    def _is_negated(self, parsed: _Parsed, match: RawMatch) -> bool:
        if any(self._is_negator(parsed, i) for i in match.gap_tokens):
            return True
        first = parsed.tokens[match.start]
        barriers = self._grammar.negation_barriers
        if first.lemma in self._grammar.subjects or first.lemma in barriers:
            return False
        clause = parsed.clause_of[match.start]
        for index in range(match.start - 1, max(-1, match.start - 1 - _NEGATION_REACH), -1):
            token = parsed.tokens[index]
            if parsed.clause_of[index] != clause or token.lemma in self._grammar.subjects or token.lemma in barriers:
                return False
            if self._is_negator(parsed, index):
                return True
        return False

    def _first_word(self, parsed: _Parsed, start: int, end: int) -> int:
        """Index of the first token in [start, end) that is not an opener like "so" or punctuation; else end."""
        if parsed.next_word:
            return min(parsed.next_word[start], end)
        index = start  # while the index is being built
        while index < end and (self._is_opener(parsed.tokens[index]) or parsed.tokens[index].is_punct):
            index += 1
        return index

    def _is_opener(self, token: Token) -> bool:
        return token.form in self._grammar.openers or token.lemma in self._grammar.openers

    def _phrase_at(self, parsed: _Parsed, index: int, phrases: _PhraseIndex) -> bool:
        """True if one of `phrases` starts at token `index` (by word form or lemma)."""
        tokens = parsed.tokens
        first = tokens[index]
        candidates = phrases.get(first.form, ()) + phrases.get(first.lemma, ())
        for phrase in candidates:
            end = index + len(phrase)
            if end <= len(tokens) and all(
                tokens[index + k].form == word or tokens[index + k].lemma == word for k, word in enumerate(phrase)
            ):
                return True
        return False

    def _scope_start(self, parsed: _Parsed, index: int) -> int:
        """Start of the statement holding token `index`: its sentence, or later.

        "If I don't get help, I'm going to hurt myself": after a comma, a new
        subject starts a main clause that the "if" no longer covers.
        """
        return parsed.scope_start[index]

    def _is_conditional_question(self, parsed: _Parsed, match: RawMatch) -> bool:
        """True for "If I feel like hurting myself, who do I call?": a question, not a threat."""
        scope_start = self._scope_start(parsed, match.start)
        if not parsed.count(parsed.conditionals, scope_start, match.start):
            return False
        if self._states_a_fact(parsed, scope_start, match.end):
            return False
        # A question mark, or a comma before a question word, later in the sentence.
        return parsed.next_question_sign[min(match.end, len(parsed.tokens))] < parsed.sentence_end[match.start]

    @staticmethod
    def _states_a_fact(parsed: _Parsed, start: int, end: int) -> bool:
        """True when the "if" reveals a real situation: "if I still live with him"."""
        return parsed.count(parsed.fact_markers, start, end) > 0

    def _opens_question(self, token: Token) -> bool:
        grammar = self._grammar
        return (
            token.lemma in grammar.question_words or token.form in grammar.auxiliaries or token.lemma in grammar.modals
        )

    def _is_hypothetical(self, parsed: _Parsed, match: RawMatch) -> bool:
        """True inside an "if", a "what if", a modal question or after "might"."""
        tokens = parsed.tokens
        sentence_start = self._scope_start(parsed, match.start)
        index = parsed.next_hypothetical[sentence_start]
        if index < match.start:
            if tokens[index].lemma in self._grammar.conditionals:
                return not self._states_a_fact(parsed, index, match.end)
            return True  # a hypothetical phrase starts there
        first = self._first_word(parsed, sentence_start, match.start + 1)
        if first <= match.start and self._is_open_modal(parsed, first) and self._modal_governs(parsed, first, match):
            return True
        # "I might overdose", "I'll have a bad trip" are worries about later;
        # "I can't breathe" is not.
        if any(self._is_open_modal(parsed, i) for i in match.gap_tokens):
            return True
        clause = parsed.clause_of[match.start]
        for index in range(match.start - 1, max(-1, match.start - 1 - _MODAL_LOOKBACK), -1):
            if parsed.clause_of[index] != clause:
                break
            if self._is_open_modal(parsed, index):
                return True
        return False

    def _modal_governs(self, parsed: _Parsed, modal: int, match: RawMatch) -> bool:
        """A question's opening modal covers the match unless a new subject comes between.

        "Will the medicine make me feel like I'm dying?" is one question;
        "can you die from this I took 5 pills" is a question, then a statement.
        """
        return not parsed.count(parsed.new_subjects, modal + 2, match.start + 1)

    def _is_open_modal(self, parsed: _Parsed, index: int) -> bool:
        """A modal that is neither negated ("can't") nor followed by "be" ("might be")."""
        if parsed.tokens[index].lemma not in self._grammar.modals:
            return False
        following = index + 1
        if following >= len(parsed.tokens):
            return True
        after = parsed.tokens[following]
        return not (after.lemma in self._grammar.negators or after.lemma == "be")

    def _is_distant_past(self, parsed: _Parsed, match: RawMatch, past: "_PastMarkers") -> bool:
        """A time in the past ("years ago") in the same statement as the match."""
        sentence = parsed.sentence_of[match.start]
        markers = past.get(sentence)
        if markers is None:
            return False
        ends, suffix_min_start, refers_back = markers
        if refers_back:
            return True
        # A conjunction ("and", "but now") between them starts a new statement
        # about another time; the nearest marker on each side decides.
        before = bisect_right(ends, match.start) - 1
        if before >= 0 and not parsed.count(parsed.conjunctions, ends[before], match.start):
            return True
        after = before + 1
        return after < len(ends) and not parsed.count(parsed.conjunctions, match.end, suffix_min_start[after])

    def _past_markers(self, parsed: _Parsed, past: Sequence[RawMatch]) -> "_PastMarkers":
        """Per sentence: the markers' ends (sorted), the smallest start from each on, whether one refers back."""
        by_sentence: Dict[int, List[RawMatch]] = {}
        for marker in past:
            by_sentence.setdefault(parsed.sentence_of[marker.start], []).append(marker)
        indexed: _PastMarkers = {}
        for sentence, markers in by_sentence.items():
            markers.sort(key=lambda m: m.end)
            suffix_min_start = [m.start for m in markers]
            for i in range(len(markers) - 2, -1, -1):
                suffix_min_start[i] = min(suffix_min_start[i], suffix_min_start[i + 1])
            refers_back = any(self._refers_back(parsed, m.start) for m in markers)
            indexed[sentence] = ([m.end for m in markers], suffix_min_start, refers_back)
        return indexed

    @staticmethod
    def _refers_back(parsed: _Parsed, index: int) -> bool:
        """In "..., but that was years ago" the time applies to what came before."""
        clause = parsed.clause_of[index]
        for before in range(index - 1, max(-1, index - 4), -1):
            if parsed.clause_of[before] != clause:
                return False
            if parsed.tokens[before].lemma in _BACK_REFERENCES:
                return True
        return False

    # -- decision ---------------------------------------------------------------

    def _decide(self, parsed: _Parsed, matches: List[RawMatch], normalised: NormalisedText) -> Optional[RiskDecision]:
        best: Optional[Tuple[Tuple[int, int, int, int], RiskDecision]] = None
        for match, rule, verdict, escalated_by in self._evaluate(parsed, matches):
            if verdict != _COUNTS:
                continue
            level = Level.URGENT if escalated_by else rule.level
            rank = (level.rank, self.book.category_rank(rule.category), -match.start, match.end)
            if best is None or rank > best[0]:
                start = parsed.tokens[match.start].start
                end = parsed.tokens[match.end - 1].end
                original_start, original_end = normalised.original_span(start, end)
                decision = RiskDecision(level, rule.category, rule.id, original_start, original_end, escalated_by)
                best = (rank, decision)
        return best[1] if best else None

    def _evaluate(
        self, parsed: _Parsed, matches: List[RawMatch]
    ) -> Iterator[Tuple[RawMatch, Rule, str, Optional[str]]]:
        """Every rule match with its verdict, and the escalator that applies."""
        idioms = _SpanIndex([m for m in matches if m.key in self._idioms])
        past = self._past_markers(parsed, [m for m in matches if m.key == DISTANT_PAST])
        signals = {
            m.key
            for m in matches
            if m.key in self._signals
            and not self._is_negated(parsed, m)
            and not (self._signals[m.key].context is Context.SITUATION and self._is_hypothetical(parsed, m))
        }
        escalators = [
            self._escalators[m.key] for m in matches if m.key in self._escalators and not self._is_negated(parsed, m)
        ]
        for match in matches:
            rule = self._rules.get(match.key)
            if rule is None:
                continue
            missing = [r for r in rule.requires if r not in signals]
            verdict = f"needs {', '.join(missing)}" if missing else self._verdict(parsed, match, rule, idioms, past)
            escalated_by = None
            if verdict == _COUNTS and rule.level is Level.PRIORITY:
                escalated_by = next((e.id for e in escalators if e.applies_to(rule)), None)
            yield match, rule, verdict, escalated_by

    def explain(self, text: Optional[str]) -> List[Dict[str, Any]]:
        """Every rule match in `text` and why it counts or not, for debugging."""
        normalised = self._normaliser.normalise(text)
        if not normalised.text.strip():
            return []
        tokens, matches = self._matcher.parse(normalised.text)
        parsed = self._segment(tokens)
        return [
            {
                "rule": rule.id,
                "words": normalised.text[tokens[match.start].start : tokens[match.end - 1].end],
                "verdict": verdict,
                "escalated_by": escalated_by,
            }
            for match, rule, verdict, escalated_by in self._evaluate(parsed, matches)
        ]

    def _verdict(
        self,
        parsed: _Parsed,
        match: RawMatch,
        rule: Rule,
        idioms: "_SpanIndex",
        past: _PastMarkers,
    ) -> str:
        if match.anchored and not self._opens_clause(parsed, match.start):
            return "not at clause start"
        if rule.negatable and self._is_negated(parsed, match):
            return "negated"
        if any(self._idioms[i.key].applies_to(rule) for i in idioms.overlapping(match)):
            return "idiom"
        if rule.context is not Context.ALWAYS and self._is_distant_past(parsed, match, past):
            return "distant past"
        if rule.context is Context.SITUATION and self._is_hypothetical(parsed, match):
            return "hypothetical"
        if rule.context is Context.SITUATION and self._is_general_mention(parsed, match):
            return "general question"
        if rule.context is Context.CURRENT and self._is_conditional_question(parsed, match):
            return "hypothetical question"
        if not rule.in_questions and self._in_question(parsed, match.start):
            return "question"
        return _COUNTS

    def _is_general_mention(self, parsed: _Parsed, match: RawMatch) -> bool:
        """True for "how do they handle someone having a flashback?": nobody in particular.

        Only inside a question, and only with no verb of its own after the person:
        "someone is having a seizure, what do I do?" is about someone real.
        """
        tokens = parsed.tokens
        following = match.start + 1
        return (
            tokens[match.start].lemma in self._grammar.general_people
            and following < len(tokens)
            and tokens[following].form.endswith("ing")
            and self._in_question(parsed, match.start)
        )

    def _in_question(self, parsed: _Parsed, index: int) -> bool:
        """True if the sentence holding token `index` asks something."""
        return parsed.sentence_asks[parsed.sentence_of[index]]

    def _opens_clause(self, parsed: _Parsed, index: int) -> bool:
        """True if only openers ("so", "just") or "do"/"can" before "not" precede it."""
        clause = parsed.clause_of[index]
        for before in range(index - 1, -1, -1):
            if parsed.clause_of[before] != clause:
                return True
            token = parsed.tokens[before]
            # "dont want to live", "cant stay safe": the auxiliary belongs to the "not".
            negated_auxiliary = (
                before == index - 1
                and parsed.tokens[index].lemma in self._grammar.negators
                and (token.form in self._grammar.auxiliaries or token.lemma in self._grammar.modals)
            )
            if not (self._is_opener(token) or token.is_punct or negated_auxiliary):
                return False
        return True

    # -- informational questions and category cues ------------------------------

    def _clauses(self, parsed: _Parsed) -> List[Tuple[int, int]]:
        spans: List[Tuple[int, int]] = []
        start = 0
        for index in range(1, len(parsed.tokens) + 1):
            if index == len(parsed.tokens) or parsed.clause_of[index] != parsed.clause_of[start]:
                spans.append((start, index))
                start = index
        return spans

    def _is_informational(self, parsed: _Parsed) -> bool:
        """A general question: asks, and says nothing about a real, current situation."""
        grammar = self._grammar
        if any(t.lemma in grammar.recent_time or t.form in grammar.recent_time for t in parsed.tokens):
            return False
        asks = False
        for start, end in self._clauses(parsed):
            first = self._first_word(parsed, start, end)
            if first >= end:
                continue
            if self._phrase_at(parsed, first, self._asking_frames):
                asks = True
                continue
            lead = parsed.tokens[first]
            is_question = (
                lead.lemma in grammar.question_words
                or lead.form in grammar.auxiliaries
                or lead.lemma in grammar.modals
                or lead.lemma in grammar.conditionals
                or any(parsed.tokens[i].is_question_mark for i in range(first, end))
                or (end < len(parsed.tokens) and parsed.tokens[end].is_question_mark)
            )
            mentions_person = any(parsed.tokens[i].lemma in grammar.first_person for i in range(first, end))
            if not is_question:
                if mentions_person:
                    return False
                continue
            asks = True
            # "am I overdosing?", "is my friend ok?" ask about a real situation.
            after = parsed.tokens[first + 1] if first + 1 < end else None
            if (
                lead.form in grammar.situational_auxiliaries
                and after is not None
                and after.lemma in grammar.first_person
            ):
                return False
        return asks

    def _cue_category(self, tokens: List[Token]) -> Optional[Category]:
        counts: Counter = Counter()
        for token in tokens:
            for category, lemmas in self._cue_lemmas.items():
                if token.lemma in lemmas or token.form in lemmas:
                    counts[category] += 1
        if not counts:
            return None
        return max(counts, key=lambda c: (counts[c], self.book.category_rank(c)))
