"""Text normalisation for the risk screen, keeping a map back to the original text.

The screen matches lower-cased, cleaned text so that "I'M NOT OK", "im not ok" and
"I’m not ok" look the same, but the offsets it reports must point into what the
person actually typed. Every character of the normalised text therefore carries
the span of original characters it came from.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from bot.nlp import long_run_edits

# Typographic quotes, primes and backticks people type instead of an apostrophe.
_APOSTROPHES = "\u2018\u2019\u201a\u201b\u2032\u2035\u02bc\u02b9\u0060\u00b4\uff07"
_DOUBLE_QUOTES = "\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb"
_CHAR_MAP = {
    **{ch: "'" for ch in _APOSTROPHES},
    **{ch: '"' for ch in _DOUBLE_QUOTES},
    **{ch: "-" for ch in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"},
    "\u2026": "...",
}
_LINE_BREAKS = "\n\r\u2028\u2029\x0b\x0c\x85"

_ASCII_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_RUN = re.compile(r"(\S)\1{2,}|\s{2,}")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_INNER_HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z])")
_DOUBLED = re.compile(r"([a-z])\1")
# Corrections remembered, and the longest word remembered: a flood of long,
# made-up words must not fill memory.
_MAX_CORRECTIONS = 50_000
_MAX_REMEMBERED_WORD = 30


@dataclass(frozen=True)
class NormalisedText:
    """Normalised text plus, per character, the original span it stands for."""

    text: str
    starts: Tuple[int, ...]
    ends: Tuple[int, ...]

    def original_span(self, start: int, end: int) -> Tuple[int, int]:
        """Maps a `[start, end)` span of the normalised text back to the original."""
        if not self.text or end <= start:
            return 0, 0
        start = max(0, min(start, len(self.text) - 1))
        end = max(start + 1, min(end, len(self.text)))
        return self.starts[start], self.ends[end - 1]


class _Builder:
    """Accumulates characters together with their original spans."""

    def __init__(self) -> None:
        self.chars: List[str] = []
        self.starts: List[int] = []
        self.ends: List[int] = []

    def add(self, chars: str, start: int, end: int) -> None:
        for ch in chars:
            self.chars.append(ch)
            self.starts.append(start)
            self.ends.append(end)

    def build(self) -> NormalisedText:
        return NormalisedText("".join(self.chars), tuple(self.starts), tuple(self.ends))


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    """NFKC, lower case, and accents dropped, for one non-ASCII character."""
    if ch in _CHAR_MAP:
        return _CHAR_MAP[ch]
    category = unicodedata.category(ch)
    if ch in _LINE_BREAKS:
        return "\n"
    if category == "Cc" or category == "Zs":
        return " "
    if category in ("Cf", "Mn", "Me"):
        # Zero-width and combining characters can hide inside a word ("su\u200bicide").
        return ""
    folded = unicodedata.normalize("NFKC", ch)
    folded = "".join(_CHAR_MAP.get(c, c) for c in folded).lower()
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _identity(text: str) -> NormalisedText:
    return NormalisedText(text, tuple(range(len(text))), tuple(range(1, len(text) + 1)))


def _clean_characters(text: str) -> NormalisedText:
    if text.isascii() and not _ASCII_CONTROL.search(text):
        return _identity(text.lower())
    out = _Builder()
    for index, ch in enumerate(text):
        out.add(_fold_char(ch), index, index + 1)
    return out.build()


def _replace_spans(source: NormalisedText, replacements: Iterable[Tuple[int, int, str]]) -> NormalisedText:
    """Applies non-overlapping, ordered `(start, end, new_text)` replacements."""
    text: List[str] = []
    starts: List[int] = []
    ends: List[int] = []
    position = 0
    for start, end, new_text in replacements:
        text.append(source.text[position:start])
        starts.extend(source.starts[position:start])
        ends.extend(source.ends[position:start])
        text.append(new_text)
        starts.extend([source.starts[start]] * len(new_text))
        ends.extend([source.ends[end - 1]] * len(new_text))
        position = end
    text.append(source.text[position:])
    starts.extend(source.starts[position:])
    ends.extend(source.ends[position:])
    return NormalisedText("".join(text), tuple(starts), tuple(ends))


def _collapse_runs(source: NormalisedText) -> NormalisedText:
    """Shortens "dieeee" to "diee" and "!!!!" to "!!"; squeezes blank runs to one."""
    replacements = []
    for match in _RUN.finditer(source.text):
        run = match.group(0)
        if run[0].isspace():
            replacement = "\n" if "\n" in run else " "
        else:
            replacement = run[:2]
        replacements.append((match.start(), match.end(), replacement))
    return _replace_spans(source, replacements) if replacements else source


def _break_long_runs(source: NormalisedText) -> NormalisedText:
    """Runs too long for the tokenizer to split in linear time, simplified (see `bot.nlp`)."""
    edits = long_run_edits(source.text)
    return _replace_spans(source, edits) if edits else source


def _undoubled_variants(word: str) -> List[str]:
    """Spellings of `word` with some of its doubled letters made single."""
    positions = [m.start() for m in _DOUBLED.finditer(word)][:3]
    variants = []
    for mask in range(1, 2 ** len(positions)):
        chars = list(word)
        for bit, position in enumerate(positions):
            if mask & (1 << bit):
                chars[position] = ""
        variants.append("".join(chars))
    return variants


def _within_one_edit(word: str, target: str) -> bool:
    """True if one insertion, deletion, substitution or swap turns `word` into `target`."""
    if word == target:
        return True
    lw, lt = len(word), len(target)
    if abs(lw - lt) > 1:
        return False
    i = 0
    while i < min(lw, lt) and word[i] == target[i]:
        i += 1
    if lw == lt:
        if word[i + 1 :] == target[i + 1 :]:
            return True
        return i + 1 < lw and word[i] == target[i + 1] and word[i + 1] == target[i] and word[i + 2 :] == target[i + 2 :]
    if lw < lt:
        return word[i:] == target[i + 1 :]
    return word[i + 1 :] == target[i:]


class TextNormaliser:
    """Cleans text for matching: Unicode, case, elongations, slang and misspellings.

    Args:
        rewrites: words or phrases replaced before tokenising, e.g. "wanna" ->
            "want to", "suicde" -> "suicide". Keys are lower case.
        fuzzy_targets: long, distinctive words that an unknown word one typing
            slip away from is corrected to ("myslef" -> "myself").
        is_known_word: tells real words from typos, so that real words are never
            "corrected".
    """

    def __init__(
        self,
        rewrites: Mapping[str, str],
        fuzzy_targets: Sequence[str] = (),
        is_known_word: Optional[Callable[[str], bool]] = None,
    ) -> None:
        self._rewrites: Dict[str, str] = {k.lower(): v for k, v in rewrites.items()}
        phrases = sorted(self._rewrites, key=len, reverse=True)
        self._phrase_pattern = (
            re.compile(r"(?<![a-z0-9'])(?:" + "|".join(re.escape(p) for p in phrases) + r")(?![a-z0-9]|'[a-z])")
            if phrases
            else None
        )
        self._fuzzy_targets = tuple(fuzzy_targets)
        self._is_known_word = is_known_word or (lambda word: False)
        self._corrections: Dict[str, str] = {}

    def normalise(self, text: Optional[str]) -> NormalisedText:
        """Returns the cleaned text and its map back to `text`."""
        if not text:
            return NormalisedText("", (), ())
        cleaned = _collapse_runs(_clean_characters(text))
        # "self-harm" and "self harm" are one thing to the patterns.
        hyphens = [(m.start(), m.end(), " ") for m in _INNER_HYPHEN.finditer(cleaned.text)]
        if hyphens:
            cleaned = _replace_spans(cleaned, hyphens)
        cleaned = self._rewrite_phrases(cleaned)
        return _break_long_runs(self._correct_words(cleaned))

    def _rewrite_phrases(self, source: NormalisedText) -> NormalisedText:
        if self._phrase_pattern is None:
            return source
        replacements = [
            (m.start(), m.end(), self._rewrites[m.group(0)]) for m in self._phrase_pattern.finditer(source.text)
        ]
        return _replace_spans(source, replacements) if replacements else source

    def _correct_words(self, source: NormalisedText) -> NormalisedText:
        replacements = []
        for match in _WORD.finditer(source.text):
            word = match.group(0)
            corrected = self._correct(word)
            if corrected != word:
                replacements.append((match.start(), match.end(), corrected))
        return _replace_spans(source, replacements) if replacements else source

    def _correct(self, word: str) -> str:
        cached = self._corrections.get(word)
        if cached is not None:
            return cached
        corrected = self._find_correction(word)
        if len(self._corrections) < _MAX_CORRECTIONS and len(word) <= _MAX_REMEMBERED_WORD:
            self._corrections[word] = corrected
        return corrected

    def _find_correction(self, word: str) -> str:
        if word in self._rewrites:
            return self._rewrites[word]
        if self._is_known_word(word):
            return word
        for variant in _undoubled_variants(word):
            if variant in self._rewrites:
                return self._rewrites[variant]
            if self._is_known_word(variant):
                return variant
        if len(word) >= 6 and "'" not in word:
            for target in self._fuzzy_targets:
                if target[0] == word[0] and _within_one_edit(word, target):
                    return target
        return word
