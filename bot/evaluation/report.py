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
    labelled = [r for r in risk if r.got == ESCALATE and (r.case.level or r.case.category)]
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
        "risk_labels": _risk_label_agreement(labelled),
        "per_topic": per_topic,
        "most_confused": [
            {"expected": expected, "got": got, "count": count}
            for (expected, got), count in confused.most_common(10)
        ],
    }


def _risk_label_agreement(escalated: Sequence[CaseResult]) -> Dict[str, Any]:
    """How often an escalated case got the level and the category its file names."""
    with_level = [r for r in escalated if r.case.level]
    with_category = [r for r in escalated if r.case.category]
    mismatches = Counter(
        (f"{r.case.level}/{r.case.category}", f"{r.level}/{r.category}")
        for r in escalated
        if (r.case.level and r.level != r.case.level) or (r.case.category and r.category != r.case.category)
    )
    return {
        "cases": len(escalated),
        "level_agreement": _ratio(sum(r.level == r.case.level for r in with_level), len(with_level)),
        "category_agreement": _ratio(sum(r.category == r.case.category for r in with_category), len(with_category)),
        "most_confused": [
            {"expected": expected, "got": got, "count": count} for (expected, got), count in mismatches.most_common(10)
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
    labels = summary["risk_labels"]
    if labels["cases"]:
        lines.append(f"Level agreement:       {labels['level_agreement']:.1%} ({labels['cases']} escalated cases)")
        lines.append(f"Category agreement:    {labels['category_agreement']:.1%}")
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


def _labels(result: CaseResult) -> Dict[str, Any]:
    """Expected and given risk labels of a case, where either exists."""
    labels: Dict[str, Any] = {}
    if result.case.level or result.case.category:
        labels["expect_level"], labels["expect_category"] = result.case.level, result.case.category
    if result.level or result.category:
        labels["level"], labels["category"] = result.level, result.category
    return labels


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
                **_labels(r),
            }
            for r in results
        ],
    }
