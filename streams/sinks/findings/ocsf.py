"""A harmful verdict as an OCSF Detection Finding (class 2004; topic ``moderation.findings.ocsf``).

Mapping (OCSF 1.9.0-dev, profile ``security_control``; checked by ``../shared/siem/validate.py``):

===============================  ================================================================
class / activity                 2004 Detection Finding, activity 1 Create (type_uid 200401),
                                 category 2 Findings, ``status_id`` 1 New, ``is_alert`` true
``finding_info.uid``             the chat event id (a replay: ``<id>:replay:<run>``): stable, so
                                 at-least-once duplicates carry the same uid
``finding_info.title`` / desc    ``Harmful response: S9 Indiscriminate Weapons``; the reasoning
                                 summary (redacted by default)
``finding_info.types``           ``S9 Indiscriminate Weapons`` per category, or ``unclassified``
``finding_info.analytic``        GuardReasoner, type 4 Learning (ML/DL), ``version`` = the model
                                 (the detection is the model's judgement, not a rule; the
                                 taxonomy tags are enrichment and sit in ``types``)
``finding_info.related_events``  a replay's link to the original finding
``severity_id``                  the verdict's severity (2 Low … 5 Critical)
``action_id`` / disposition      2 Denied / 2 Blocked (a harmful verdict is always blocked)
``metadata``                     product GuardStream, schema version, ``correlation_uid`` and
                                 ``original_event_uid`` = the event id, ``labels`` ``replay``
``evidences``                    the request (user uid, SHA-256, length, verdict), the response,
                                 one per category (the reasoning steps and words that gave the
                                 tag), the reasoning summary and harm phrases
``observables``                  the user uid, the texts' SHA-256 hashes
``unmapped``                     conversation id, answers, categories, harms, text digests,
                                 exposure, engine, token usage, finish reason, trace id, replay;
                                 with include_text the model's reasoning
===============================  ================================================================
"""

from __future__ import annotations

from typing import Any

from streams.categorize import exposure
from streams.sinks.disclosure import Disclosure
from streams.sinks.findings.common import (
    PRODUCT,
    PRODUCT_VERSION,
    Replay,
    category_labels,
    detection,
    epoch_ms,
    finding_uid,
    provider,
    severity_of,
    title,
)
from streams.verdict import Verdict

__all__ = ["OCSF_VERSION", "mark_ocsf_truncated", "ocsf_finding"]

OCSF_VERSION = "1.9.0-dev"  # the schema ../shared/siem/ocsf/ describes
_SEVERITY = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
_CLASS_UID, _ACTIVITY_CREATE = 2004, 1
_OBSERVABLE_HASH, _OBSERVABLE_USER_UID = (8, "Hash"), (31, "User Object: uid")


def ocsf_finding(
    verdict: Verdict,
    disclosure: Disclosure | None = None,
    *,
    trace_id: str | None = None,
    replay: Replay | None = None,
    source: str = "chat.events",
) -> dict[str, Any]:
    """The OCSF Detection Finding for a harmful ``verdict``; ``source`` is the input topic."""
    shown = disclosure or Disclosure(verdict)
    kind = detection(verdict)
    severity = severity_of(verdict).ocsf_id
    uid = finding_uid(verdict.event_id, replay)
    reason = shown.reason
    heading = title(verdict)
    evidences = _evidences(verdict, shown)
    record: dict[str, Any] = {
        "activity_id": _ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": _CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": _CLASS_UID * 100 + _ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "time": epoch_ms(verdict.moderated_at),
        "severity_id": severity,
        "severity": _SEVERITY[severity],
        "status_id": 1,
        "status": "New",
        "is_alert": True,
        "action_id": 2,
        "action": "Denied",
        "disposition_id": 2,
        "disposition": "Blocked",
        "message": f"{heading}. {reason}",
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": PRODUCT_VERSION},
            "profiles": ["security_control"],
            "uid": uid,
            "correlation_uid": verdict.event_id,
            "original_event_uid": verdict.event_id,
            "event_code": kind,
        },
        "finding_info": {
            "uid": uid,
            "title": heading,
            "desc": reason,
            "types": category_labels(verdict),
            "analytic": {
                "type_id": 4,
                "type": "Learning (ML/DL)",
                "name": "GuardReasoner",
                "uid": f"guardstream.{kind}",
                "category": "harmful content",
                "version": verdict.model or "unknown",
            },
            "created_time": epoch_ms(verdict.moderated_at),
            "first_seen_time": epoch_ms(verdict.event_timestamp),
            "last_seen_time": epoch_ms(verdict.event_timestamp),
            "data_sources": [source],
        },
        "evidences": evidences,
        "observables": _observables(evidences),
        "unmapped": _unmapped(verdict, shown, trace_id, replay),
    }
    if replay is not None:
        record["metadata"]["labels"] = ["replay"]
        record["finding_info"]["related_events"] = [
            {
                "uid": finding_uid(verdict.event_id),
                "title": "the original verdict of this event",
                "desc": f"outcome {replay.original_outcome or 'unknown'} by model "
                f"{replay.original_model or 'unknown'}",
                "type_uid": record["type_uid"],
            }
        ]
    return record


def _evidences(verdict: Verdict, shown: Disclosure) -> list[dict[str, Any]]:
    digests = shown.digests()
    texts = shown.texts()
    request: dict[str, Any] = {"role": "user", "verdict": _value(verdict.request), **digests["request"]}
    if "request_text" in texts:
        request["text"] = texts["request_text"]
    evidences: list[dict[str, Any]] = [
        {
            "name": "request",
            "uid": f"{verdict.event_id}:request",
            "user": {"uid": verdict.user_id},
            "data": request,
        }
    ]
    if digests["response"] is not None:
        response: dict[str, Any] = {
            "role": "assistant",
            "verdict": _value(verdict.response),
            "completion": _value(verdict.completion),
            **digests["response"],
        }
        if texts.get("response_text") is not None:
            response["text"] = texts["response_text"]
        evidences.append({"name": "response", "uid": f"{verdict.event_id}:response", "data": response})
    for category in shown.categories():
        evidences.append(
            {
                "name": f"{category['tag']} {category['name']}",
                "uid": f"{verdict.event_id}:{category['tag']}",
                "data": {
                    "tag": category["tag"],
                    "severity": category["severity"],
                    "reasoning_steps": category["evidence"],
                },
            }
        )
    evidences.append(
        {
            "name": "reasoning",
            "uid": f"{verdict.event_id}:reasoning",
            "data": {"summary": shown.reason, "harms": shown.harms()},
        }
    )
    return evidences


def _observables(evidences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for index, evidence in enumerate(evidences):
        user = evidence.get("user")
        if user is not None:
            type_id, caption = _OBSERVABLE_USER_UID
            out.append(
                {
                    "name": f"evidences[{index}].user.uid",
                    "type_id": type_id,
                    "type": caption,
                    "value": user["uid"],
                }
            )
        sha = evidence["data"].get("sha256")
        if sha is not None:
            type_id, caption = _OBSERVABLE_HASH
            out.append(
                {"name": f"evidences[{index}].data.sha256", "type_id": type_id, "type": caption, "value": sha}
            )
    return out


def _unmapped(
    verdict: Verdict, shown: Disclosure, trace_id: str | None, replay: Replay | None
) -> dict[str, Any]:
    exposed = exposure(verdict.request, verdict.completion, verdict.response)
    unmapped: dict[str, Any] = {
        "conversation_id": verdict.conversation_id,
        "outcome": verdict.outcome.value,
        "status": verdict.status.value if verdict.status else None,
        "answers": {
            "request": _value(verdict.request),
            "completion": _value(verdict.completion),
            "response": _value(verdict.response),
        },
        "severity": severity_of(verdict).label,
        "exposure": exposed.value if exposed is not None else None,
        "categories": shown.categories(),
        "harms": shown.harms(),
        "text": shown.digests(),
        "engine": provider(verdict),
        "usage": {"input_tokens": verdict.prompt_tokens, "output_tokens": verdict.completion_tokens},
        "finish_reason": verdict.finish_reason,
        "trace_id": trace_id,
    }
    reasoning = shown.reasoning()
    if reasoning is not None:
        unmapped["reasoning"] = reasoning
    if replay is not None:
        unmapped["replay"] = replay.to_dict(verdict.event_id)
    return unmapped


def _value(answer: Any) -> str | None:
    return answer.value if answer is not None else None


def mark_ocsf_truncated(record: dict[str, Any], cut: list[str], size: int) -> None:
    """Where an OCSF finding shrunk to fit the broker says so: ``metadata.is_truncated``,
    ``metadata.untruncated_size`` and the cut JSON pointers in ``unmapped.truncated``."""
    metadata = record.setdefault("metadata", {})
    metadata["is_truncated"] = True
    metadata["untruncated_size"] = size
    record.setdefault("unmapped", {})["truncated"] = cut
