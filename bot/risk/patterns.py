"""The risk pattern book: loads and checks `patterns.yml`.

A pattern is a line of space-separated token specs, read left to right:

    word          the token's lemma is the lemma of `word` ("died" ~ "die")
    a|b|c         any of these lemmas
    =word         the exact word form, not lemmatised (=dying; =had|=took, =had|took;
                  =@group for the exact forms listed in a group)
    @group        any lemma of the word group `group` (defined under `groups:`);
                  mixes with words: @target|baby|kid
    (a b|c)       any of these word sequences: "(burning up|overheating)"; add "?"
                  after the ")" to make the whole choice optional
    %phrase       any of the sub-patterns listed under `phrases:` (e.g. %suicide_act
                  for "kill myself", "end my life", ...); one level deep
    #             a number ("5", "five")
    #year         a year, 1900-2099
    ~ or ~N       a gap of up to N (default 2) tokens that are not punctuation
    spec?         the spec is optional
    ^             (first only) the match must open its clause, apart from openers
                  such as "so", "just", "honestly": "^ want to die" flags "just want
                  to die" but not "people who want to die"

A match never starts or ends on a gap token. Word lists, rewrites and grammar cues
live next to the rules in the same file, so a reviewer can read every decision
the screen makes in one place.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple, Union

import yaml

DEFAULT_PATTERNS_PATH = Path(__file__).with_name("patterns.yml")

_ID = re.compile(r"^[a-z_]+(\.[a-z0-9_]+)+$")
_PATTERN_TOKEN = re.compile(r"\(([^()]*)\)(\??)|(\S+)")
_WORD = re.compile(r"^[a-z0-9'][a-z0-9'-]*$")
_MAX_GAP = 5


class PatternBookError(ValueError):
    """The pattern file is malformed; the message says where."""


class Level(str, Enum):
    """How soon a person needs a human (Columbia C-SSRS spirit)."""

    URGENT = "urgent"
    PRIORITY = "priority"

    @property
    def rank(self) -> int:
        """Higher is more urgent."""
        return 2 if self is Level.URGENT else 1


class Category(str, Enum):
    """What kind of risk a message shows."""

    SUICIDE = "suicide"
    SELF_HARM = "self_harm"
    HARM_TO_OTHERS = "harm_to_others"
    MEDICAL_EMERGENCY = "medical_emergency"
    ACUTE_CRISIS = "acute_crisis"
    ABUSE_DANGER = "abuse_danger"


class Context(str, Enum):
    """Where a rule counts.

    ALWAYS: everywhere, even about the distant past.
    CURRENT: unless the clause is about the distant past ("I used to cut"); still
        counts inside a question or an "if" ("should I kill myself?").
    SITUATION: only where the text describes something real and current: not a
        hypothetical or general question ("what if I overheat?", "can I overdose
        on it?") and not the distant past ("I overdosed years ago").
    """

    ALWAYS = "always"
    CURRENT = "current"
    SITUATION = "situation"


class SpecKind(str, Enum):
    """What one token spec compares."""

    LEMMA = "lemma"
    FORM = "form"
    NUMBER = "number"
    YEAR = "year"
    GAP = "gap"


@dataclass(frozen=True)
class TokenSpec:
    """One parsed token spec of a pattern."""

    kind: SpecKind
    words: Tuple[str, ...] = ()
    optional: bool = False
    gap: int = 0


@dataclass(frozen=True)
class Pattern:
    """One pattern, with `%phrase` references already expanded."""

    source: str
    specs: Tuple[TokenSpec, ...]
    anchored: bool = False


Patterns = Tuple[Pattern, ...]


@dataclass(frozen=True)
class Rule:
    """Patterns that, when found, flag a message with one level and category."""

    id: str
    category: Category
    level: Level
    context: Context
    negatable: bool
    patterns: Patterns
    requires: Tuple[str, ...] = ()
    in_questions: bool = True
    examples: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Modifier:
    """Idioms, signals and escalators: they change rule matches, never flag alone."""

    id: str
    patterns: Patterns
    categories: FrozenSet[Category] = frozenset()
    rules: FrozenSet[str] = frozenset()
    context: Context = Context.SITUATION
    examples: Tuple[str, ...] = ()

    def applies_to(self, rule: Rule) -> bool:
        """Escalators name categories, idioms may name rules; none named means all."""
        if self.categories and rule.category not in self.categories:
            return False
        return not self.rules or rule.id in self.rules


@dataclass(frozen=True)
class Grammar:
    """Small word lists the screen's context logic relies on."""

    negators: FrozenSet[str]
    negation_cancellers: FrozenSet[str]
    subjects: FrozenSet[str]
    clause_breaks: FrozenSet[str]
    conditionals: FrozenSet[str]
    modals: FrozenSet[str]
    openers: FrozenSet[str]
    question_words: FrozenSet[str]
    auxiliaries: FrozenSet[str]
    situational_auxiliaries: FrozenSet[str]
    asking_frames: Tuple[Tuple[str, ...], ...]
    hypothetical_phrases: Tuple[Tuple[str, ...], ...]
    distant_past: Patterns
    recent_time: FrozenSet[str]
    first_person: FrozenSet[str]
    general_people: FrozenSet[str] = frozenset()
    negation_barriers: FrozenSet[str] = frozenset()


@dataclass(frozen=True)
class PatternBook:
    """Everything `patterns.yml` defines, parsed and checked."""

    categories: Tuple[Category, ...]
    groups: Mapping[str, Tuple[str, ...]]
    rewrites: Mapping[str, str]
    fuzzy_targets: Tuple[str, ...]
    lemma_overrides: Mapping[str, str]
    grammar: Grammar
    rules: Tuple[Rule, ...]
    idioms: Tuple[Modifier, ...]
    signals: Tuple[Modifier, ...]
    escalators: Tuple[Modifier, ...]
    cues: Mapping[Category, Tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Optional[Union[str, Path]] = None) -> PatternBook:
        """Reads and checks a pattern file (the packaged one by default)."""
        path = Path(path) if path else DEFAULT_PATTERNS_PATH
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise PatternBookError(f"Cannot read risk patterns {path}: {error}") from error
        if not isinstance(document, dict):
            raise PatternBookError(f"{path}: expected a mapping at the top level.")
        return _BookParser(document, str(path)).parse()

    def category_rank(self, category: Category) -> int:
        """Higher ranks win ties between matches of the same level."""
        return len(self.categories) - self.categories.index(category)

    def vocabulary(self) -> FrozenSet[str]:
        """Every literal word the book mentions (all are real, known words)."""
        words: Set[str] = set()
        patterns = [p for rule in self.rules for p in rule.patterns]
        patterns += [p for m in (*self.idioms, *self.signals, *self.escalators) for p in m.patterns]
        for pattern in patterns:
            for spec in pattern.specs:
                words.update(spec.words)
        for members in (*self.groups.values(), *self.cues.values()):
            words.update(members)
        words.update(self.fuzzy_targets)
        for replacement in self.rewrites.values():
            words.update(replacement.split())
        return frozenset(w for w in words if w.isalpha())


def _merge_gaps(specs: Tuple[TokenSpec, ...]) -> Tuple[TokenSpec, ...]:
    """Joins gaps left next to each other by an empty optional choice."""
    merged: List[TokenSpec] = []
    for spec in specs:
        if merged and spec.kind is SpecKind.GAP and merged[-1].kind is SpecKind.GAP:
            merged[-1] = TokenSpec(SpecKind.GAP, gap=min(_MAX_GAP, merged[-1].gap + spec.gap))
        else:
            merged.append(spec)
    return tuple(merged)


class _BookParser:
    """Turns the YAML document into a `PatternBook`, failing with a location."""

    def __init__(self, document: Mapping[str, Any], where: str) -> None:
        self.document = document
        self.where = where
        self.groups: Dict[str, Tuple[str, ...]] = {}
        self.phrases: Dict[str, Tuple[str, ...]] = {}
        self.ids: Dict[str, str] = {}

    def fail(self, where: str, message: str) -> PatternBookError:
        return PatternBookError(f"{self.where}: {where}: {message}")

    def parse(self) -> PatternBook:
        doc = self.document
        categories = tuple(self.enum(Category, c, "categories") for c in doc.get("categories") or [])
        if sorted(categories) != sorted(Category):
            raise self.fail("categories", "list every category once, in tie-break order")
        self.groups = {
            str(name): self.words(members, f"groups.{name}") for name, members in (doc.get("groups") or {}).items()
        }
        for name, fragments in (doc.get("phrases") or {}).items():
            if not isinstance(fragments, list) or not fragments:
                raise self.fail(f"phrases.{name}", "expected a non-empty list")
            self.phrases[str(name)] = tuple(str(f) for f in fragments)
        rewrites = {str(k).lower(): str(v).lower() for k, v in (doc.get("rewrites") or {}).items()}
        for key, value in rewrites.items():
            looping = [w for w in value.split() if w in rewrites and w != key]
            if looping:
                raise self.fail("rewrites", f"{key!r} -> {value!r} produces rewritten {looping}")

        rules = tuple(self.rule(entry, i) for i, entry in enumerate(doc.get("rules") or []))
        if not rules:
            raise self.fail("rules", "no rules defined")
        idioms = self.modifiers("idioms")
        signals = self.modifiers("signals")
        escalators = self.modifiers("escalators")
        signal_ids = {s.id for s in signals}
        for rule in rules:
            unknown = [r for r in rule.requires if r not in signal_ids]
            if unknown:
                raise self.fail(rule.id, f"requires unknown signals {unknown}")
        rule_ids = {r.id for r in rules}
        for idiom in idioms:
            unknown = sorted(idiom.rules - rule_ids)
            if unknown:
                raise self.fail(idiom.id, f"names unknown rules {unknown}")
        cues = {
            self.enum(Category, name, "cues"): self.words(words, f"cues.{name}")
            for name, words in (doc.get("cues") or {}).items()
        }
        overrides = {str(k).lower(): str(v).lower() for k, v in (doc.get("lemma_overrides") or {}).items()}
        return PatternBook(
            categories=categories,
            groups=self.groups,
            rewrites=rewrites,
            fuzzy_targets=self.words(doc.get("fuzzy_targets"), "fuzzy_targets"),
            lemma_overrides=overrides,
            grammar=self.grammar(),
            rules=rules,
            idioms=idioms,
            signals=signals,
            escalators=escalators,
            cues=cues,
        )

    def words(self, value: Any, where: str) -> Tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, "expected a non-empty list of words")
        words = []
        for item in value:
            if not isinstance(item, str):
                # YAML reads bare no/yes/on/off as booleans: quote them.
                raise self.fail(where, f"{item!r} is not a string (quote it)")
            word = item.strip().lower()
            if not _WORD.match(word):
                raise self.fail(where, f"{item!r} is not a single lower-case word")
            words.append(word)
        return tuple(words)

    def enum(self, enum: Any, value: Any, where: str) -> Any:
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise self.fail(where, f"{value!r} is not one of: {allowed}") from None

    def new_id(self, value: Any, where: str) -> str:
        identifier = str(value or "")
        if not _ID.match(identifier):
            raise self.fail(where, f"bad id {identifier!r} (use kind.name, lower case)")
        if identifier in self.ids:
            raise self.fail(where, f"id {identifier!r} already used at {self.ids[identifier]}")
        self.ids[identifier] = where
        return identifier

    def rule(self, entry: Mapping[str, Any], index: int) -> Rule:
        where = f"rules[{index}]"
        rule_id = self.new_id(entry.get("id"), where)
        where = f"{where} {rule_id}"
        return Rule(
            id=rule_id,
            category=self.enum(Category, entry.get("category"), where),
            level=self.enum(Level, entry.get("level"), where),
            context=self.enum(Context, entry.get("context", "situation"), where),
            negatable=bool(entry.get("negatable", True)),
            patterns=self.patterns(entry, where),
            requires=tuple(str(r) for r in entry.get("requires") or []),
            in_questions=bool(entry.get("in_questions", True)),
            examples=self.examples(entry, where),
        )

    def modifiers(self, key: str) -> Tuple[Modifier, ...]:
        found = []
        for index, entry in enumerate(self.document.get(key) or []):
            where = f"{key}[{index}]"
            modifier_id = self.new_id(entry.get("id"), where)
            where = f"{where} {modifier_id}"
            found.append(
                Modifier(
                    id=modifier_id,
                    patterns=self.patterns(entry, where),
                    categories=frozenset(self.enum(Category, c, where) for c in entry.get("categories") or []),
                    rules=frozenset(str(r) for r in entry.get("rules") or []),
                    context=self.enum(Context, entry.get("context", "situation"), where),
                    examples=self.examples(entry, where),
                )
            )
        return tuple(found)

    def examples(self, entry: Mapping[str, Any], where: str) -> Tuple[str, ...]:
        examples = entry.get("examples") or []
        if not isinstance(examples, list):
            raise self.fail(where, "`examples` must be a list of strings")
        return tuple(str(e) for e in examples)

    def patterns(self, entry: Mapping[str, Any], where: str) -> Patterns:
        sources = entry.get("patterns")
        if not isinstance(sources, list) or not sources:
            raise self.fail(where, "needs a non-empty `patterns` list")
        return tuple(p for source in sources for p in self.expand(str(source), where))

    def expand(self, source: str, where: str) -> List[Pattern]:
        """Parses a pattern line, one `Pattern` per combination of choices."""
        if source.count("(") != source.count(")"):
            raise self.fail(where, f"unbalanced brackets in {source!r}")
        parts = _PATTERN_TOKEN.findall(source)
        anchored = bool(parts) and parts[0][2] == "^"
        patterns = []
        for sequence in self.sequences(parts[1:] if anchored else parts, source, where, phrases=True):
            specs = _merge_gaps(tuple(sequence))
            self.check(specs, source, where)
            patterns.append(Pattern(source, specs, anchored))
        return patterns

    def sequences(
        self, parts: List[Tuple[str, str, str]], source: str, where: str, phrases: bool
    ) -> List[List[TokenSpec]]:
        """Every spec sequence the parsed parts of a line (or phrase fragment) allow."""
        choices: List[List[List[TokenSpec]]] = []
        for inner, optional, raw in parts:
            if not raw:
                alternatives = [a.split() for a in inner.split("|")]
                if not all(alternatives):
                    raise self.fail(where, f"empty choice in {source!r}")
                # One-word choices share one spec: fewer patterns for the matcher.
                single = [a[0] for a in alternatives if len(a) == 1 and _WORD.match(a[0])]
                options = [self.specs(["|".join(single)], source, where)] if single else []
                options += [self.specs(a, source, where) for a in alternatives if a[0] not in single or len(a) > 1]
                choices.append(options + [[]] if optional else options)
            elif raw.startswith("%"):
                fragments = self.phrases.get(raw[1:]) if phrases else None
                if fragments is None:
                    raise self.fail(where, f"unknown or nested phrase {raw!r} in {source!r}")
                choices.append(
                    [
                        sequence
                        for fragment in fragments
                        for sequence in self.sequences(_PATTERN_TOKEN.findall(fragment), source, where, False)
                    ]
                )
            else:
                choices.append([self.specs([raw], source, where)])
        return [[spec for part in combination for spec in part] for combination in itertools.product(*choices)]

    def specs(self, raws: List[str], source: str, where: str) -> List[TokenSpec]:
        specs = []
        for raw in raws:
            optional = raw.endswith("?") and len(raw) > 1
            token = raw[:-1] if optional else raw
            if token.startswith("~"):
                size = token[1:] or "2"
                if not size.isdigit() or not 1 <= int(size) <= _MAX_GAP or optional:
                    raise self.fail(where, f"bad gap {raw!r} in {source!r}")
                specs.append(TokenSpec(SpecKind.GAP, gap=int(size)))
            elif token == "#":
                specs.append(TokenSpec(SpecKind.NUMBER, optional=optional))
            elif token == "#year":
                specs.append(TokenSpec(SpecKind.YEAR, optional=optional))
            else:
                kind = SpecKind.FORM if token.startswith("=") else SpecKind.LEMMA
                alternatives: List[str] = []
                for word in (w.lstrip("=") for w in token.split("|")):
                    if word.startswith("@"):
                        if word[1:] not in self.groups:
                            raise self.fail(where, f"unknown group {word!r} in {source!r}")
                        alternatives.extend(self.groups[word[1:]])
                    elif _WORD.match(word):
                        alternatives.append(word)
                    else:
                        raise self.fail(where, f"bad word {word!r} in {source!r}")
                specs.append(TokenSpec(kind, tuple(alternatives), optional))
        return specs

    def check(self, specs: Tuple[TokenSpec, ...], source: str, where: str) -> None:
        if not specs:
            raise self.fail(where, "empty pattern")
        if specs[0].kind is SpecKind.GAP or specs[-1].kind is SpecKind.GAP:
            raise self.fail(where, f"a pattern cannot start or end with a gap: {source!r}")
        if all(spec.optional for spec in specs if spec.kind is not SpecKind.GAP):
            raise self.fail(where, f"every token is optional in {source!r}")

    def phrase_list(self, value: Any, where: str) -> Tuple[Tuple[str, ...], ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, "expected a non-empty list of phrases")
        return tuple(tuple(str(p).lower().split()) for p in value)

    def grammar(self) -> Grammar:
        grammar = self.document.get("grammar")
        if not isinstance(grammar, dict):
            raise self.fail("grammar", "expected a mapping")

        def words(key: str) -> FrozenSet[str]:
            return frozenset(self.words(grammar.get(key), f"grammar.{key}"))

        past = grammar.get("distant_past")
        if not isinstance(past, list) or not past:
            raise self.fail("grammar.distant_past", "expected a non-empty list of patterns")
        return Grammar(
            negators=words("negators"),
            negation_cancellers=words("negation_cancellers"),
            subjects=words("subjects"),
            clause_breaks=words("clause_breaks"),
            conditionals=words("conditionals"),
            modals=words("modals"),
            openers=words("openers"),
            question_words=words("question_words"),
            auxiliaries=words("auxiliaries"),
            situational_auxiliaries=words("situational_auxiliaries"),
            asking_frames=self.phrase_list(grammar.get("asking_frames"), "grammar.asking_frames"),
            hypothetical_phrases=self.phrase_list(grammar.get("hypothetical_phrases"), "grammar.hypothetical_phrases"),
            distant_past=tuple(p for source in past for p in self.expand(str(source), "grammar.distant_past")),
            recent_time=words("recent_time"),
            first_person=words("first_person"),
            general_people=words("general_people") if "general_people" in grammar else frozenset(),
            negation_barriers=words("negation_barriers") if "negation_barriers" in grammar else frozenset(),
        )
