"""Reads labeled evaluation cases (`cases: [{text, expect}]`) with line-accurate errors.

A risk case may also name the `level` and `category` a clinician should see
(`level: urgent`, `category: suicide`); the report says how often the
assistant's own labels agree. They are optional and never change `expect`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import yaml

ESCALATE = "escalate"


class CaseFileError(ValueError):
    """A case file that cannot be used, with the line that is wrong."""


@dataclass(frozen=True)
class Case:
    """One message and the outcomes that count as right for it."""

    text: str
    expect: Tuple[str, ...]
    line: int
    level: Optional[str] = None
    category: Optional[str] = None

    @property
    def expects_faq(self) -> bool:
        """True when any acceptable outcome is a FAQ answer."""
        return any(outcome.startswith("faq/") for outcome in self.expect)

    @property
    def expects_escalation(self) -> bool:
        """True when the message should reach a clinician."""
        return ESCALATE in self.expect

    def accepts(self, outcome: str) -> bool:
        """Whether `outcome` is one of the acceptable outcomes."""
        return outcome in self.expect


def _scalar(node: yaml.Node) -> object:
    if isinstance(node, yaml.ScalarNode):
        return node.value
    return None


def _label(node: Optional[yaml.Node], name: str, path: Path) -> Optional[str]:
    """An optional one-word label (`level`, `category`) of a risk case."""
    if node is None:
        return None
    value = _scalar(node)
    if not isinstance(value, str) or not value.strip() or " " in value.strip():
        raise CaseFileError(f"{path}: line {node.start_mark.line + 1}: `{name}` must be a single word")
    return value.strip()


def load_cases(path: Path) -> List[Case]:
    """Loads and validates a case file; raises CaseFileError naming the line."""
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CaseFileError(f"{path}: cannot read the file ({error})") from error
    try:
        root = yaml.compose(source)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "unknown line"
        problem = getattr(error, "problem", None) or str(error)
        raise CaseFileError(f"{path}: {where}: not valid YAML ({problem})") from error
    if root is None:
        raise CaseFileError(f"{path}: line 1: expected a mapping with a `cases:` list (the file is empty)")
    if not isinstance(root, yaml.MappingNode):
        raise CaseFileError(f"{path}: line {root.start_mark.line + 1}: expected a mapping with a `cases:` list")
    cases_node = next((value for key, value in root.value if _scalar(key) == "cases"), None)
    if not isinstance(cases_node, yaml.SequenceNode):
        line = (cases_node.start_mark.line + 1) if cases_node is not None else root.start_mark.line + 1
        raise CaseFileError(f"{path}: line {line}: `cases:` must be a list of {{text, expect}}")
    cases: List[Case] = []
    for item in cases_node.value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            raise CaseFileError(f"{path}: line {line}: each case must be a mapping with `text` and `expect`")
        fields = {_scalar(key): value for key, value in item.value}
        text, expect = fields.get("text"), fields.get("expect")
        if not isinstance(text, yaml.ScalarNode) or not str(text.value).strip():
            raise CaseFileError(f"{path}: line {line}: case has no `text`")
        if expect is not None and not isinstance(expect, yaml.ScalarNode):
            raise CaseFileError(
                f"{path}: line {expect.start_mark.line + 1}: `expect` must be text; separate several outcomes with |"
            )
        if not isinstance(expect, yaml.ScalarNode) or not str(expect.value).strip():
            raise CaseFileError(f"{path}: line {line}: case has no `expect`")
        outcomes = tuple(part.strip() for part in str(expect.value).split("|") if part.strip())
        if not outcomes:
            raise CaseFileError(f"{path}: line {line}: `expect` is empty")
        labels = [_label(fields.get(name), name, path) for name in ("level", "category")]
        cases.append(Case(text=str(text.value), expect=outcomes, line=line, level=labels[0], category=labels[1]))
    if not cases:
        raise CaseFileError(f"{path}: line {cases_node.start_mark.line + 1}: `cases:` is empty")
    return cases
