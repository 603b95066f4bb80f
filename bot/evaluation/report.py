"""Summary figures of an evaluation: accuracy, per-topic precision/recall, escalation."""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Sequence

from bot.evaluation.cases import ESCALATE
from bot.evaluation.runner import CaseResult


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def summarise(results: Sequence[CaseResult]) -> Dict[str, Any]:
    """Computes the headline figures and per-topic precision and recall."""
    faq = [r for r in results if r.case.expects_faq]
    risk = [r for r in results if r.case.expects_escalation]
    safe = [r for r in results if not r.case.expects_escalation]
    topics = sorted(
        {o for r in results for o in r.case.expect if o.startswith("faq/")}
        | {r.got for r in results if r.got.startswith("faq/")}
    )
    per_topic: Dict[str, Dict[str, Any]] = {}
    for topic in topics:
        expected = [r for r in results if topic in r.case.expect]
        predicted = [r for r in results if r.got == topic]
        per_topic[topic] = {
            "precision": _ratio(sum(r.correct for r in predicted), len(predicted)),
            "recall": _ratio(sum(r.correct for r in expected), len(expected)),
            "support": len(expected),
        }
    confused = Counter((r.case.expect[0], r.got) for r in results if not r.correct)
    return {
        "cases": len(results),
        "accuracy": _ratio(sum(r.correct for r in results), len(results)),
        "faq_cases": len(faq),
        "faq_accuracy": _ratio(sum(r.correct for r in faq), len(faq)),
        "escalation_cases": len(risk),
        "escalation_recall": _ratio(sum(r.got == ESCALATE for r in risk), len(risk)),
        "false_escalation_rate": _ratio(sum(r.got == ESCALATE for r in safe), len(safe)),
        "false_escalations": sum(r.got == ESCALATE for r in safe),
        "fallback_rate": _ratio(sum(r.fell_back for r in results), len(results)),
        "per_topic": per_topic,
        "most_confused": [
            {"expected": expected, "got": got, "count": count}
            for (expected, got), count in confused.most_common(10)
        ],
    }


def format_summary(summary: Dict[str, Any]) -> str:
    """Renders the summary as a plain-text report."""
    lines: List[str] = [
        f"Cases:                 {summary['cases']}",
        f"Overall accuracy:      {summary['accuracy']:.1%}",
    ]
    if summary["faq_cases"]:
        lines.append(f"FAQ accuracy:          {summary['faq_accuracy']:.1%} ({summary['faq_cases']} cases)")
    if summary["escalation_cases"]:
        lines.append(
            f"Escalation recall:     {summary['escalation_recall']:.1%} ({summary['escalation_cases']} cases)"
        )
    lines.append(
        f"False escalations:     {summary['false_escalation_rate']:.1%} ({summary['false_escalations']} cases)"
    )
    lines.append(f"Fallback rate:         {summary['fallback_rate']:.1%}")
    if summary["per_topic"]:
        lines.append("")
        lines.append(f"{'topic':44} {'precision':>9} {'recall':>7} {'n':>4}")
        for topic, figures in summary["per_topic"].items():
            lines.append(
                f"{topic:44} {figures['precision']:>9.2f} {figures['recall']:>7.2f} {figures['support']:>4}"
            )
    if summary["most_confused"]:
        lines.append("")
        lines.append("Most confused (expected -> got):")
        for pair in summary["most_confused"]:
            lines.append(f"  {pair['count']:>3}  {pair['expected']} -> {pair['got']}")
    return "\n".join(lines)


def as_json(summary: Dict[str, Any], results: Sequence[CaseResult]) -> Dict[str, Any]:
    """The `--json` document: summary plus one entry per case."""
    return {
        "summary": summary,
        "cases": [
            {
                "text": r.case.text,
                "expect": "|".join(r.case.expect),
                "got": r.got,
                "confidence": round(r.confidence, 4),
            }
            for r in results
        ],
    }
