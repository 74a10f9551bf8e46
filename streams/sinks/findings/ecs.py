"""A harmful verdict as an Elastic Common Schema alert (topic ``moderation.findings.ecs``).

Mapping (ECS 9.5; every field is an ECS field, checked by ``../shared/siem/validate.py``):

==============================  ===============================================================
``event.kind``                  ``alert``; ``event.category`` ``intrusion_detection``,
                                ``event.type`` ``denied`` (a harmful verdict is always blocked)
``event.id``                    the finding uid: the chat event id (a replay: ``<id>:replay:<run>``)
``event.action``                ``harmful_request`` / ``harmful_response``
``event.severity``              OCSF ``severity_id`` of the verdict's severity (2 low … 5 critical)
``event.risk_score(_norm)``     21 / 47 / 73 / 99 (Elastic's default per severity)
``event.reason``, ``message``   the reasoning summary (redacted by default), title + summary
``event.start`` / ``created``   chat event time / verdict time; ``@timestamp`` = verdict time
``rule.*``                      the guard: ``rule.version`` is the model, ``rule.id``
                                ``guardstream.harmful_request|response``, ruleset GuardStream
``threat.framework``,           the harm taxonomy and its tags / names (absent when no tag fits);
``threat.technique.id/name``    ``tags`` holds the tags, or ``unclassified``
``gen_ai.*``                    the guard call: operation, provider, request/response model,
                                ``usage.input_tokens`` / ``output_tokens``; with include_text
                                also ``input.messages`` (the chat) and ``output.messages``
``user.id``, ``related.*``      the user; ``related.hash`` the texts' SHA-256
``trace.id``                    from the record's ``traceparent`` (the chat event's trace)
``labels.*``                    conversation id, answers, severity, exposure, harm phrases,
                                text SHA-256 / length, finish reason, replay link
==============================  ===============================================================

ECS maps ``gen_ai.response.finish_reasons`` as ``nested`` (objects), which a list
of reason strings is not: the finish reason goes to ``labels.finish_reason``.
"""

from __future__ import annotations

from typing import Any

from streams.categorize import Severity, exposure
from streams.sinks.disclosure import Disclosure
from streams.sinks.findings.common import (
    GUARD_REFERENCE,
    HAZARD_FRAMEWORK,
    PRODUCT,
    PRODUCT_VERSION,
    UNCLASSIFIED,
    Replay,
    detection,
    finding_uid,
    iso_time,
    provider,
    severity_of,
    title,
)
from streams.verdict import Verdict

__all__ = ["ECS_VERSION", "ecs_finding", "mark_ecs_truncated"]

ECS_VERSION = "9.5.0-dev"  # the ECS field list ../shared/siem/ecs/ecs_flat.yml describes
_RISK = {Severity.LOW: 21, Severity.MEDIUM: 47, Severity.HIGH: 73, Severity.CRITICAL: 99}
_RULE_DESCRIPTION = {
    "harmful_request": "GuardReasoner Task 1: the human user's request is harmful.",
    "harmful_response": "GuardReasoner Task 3: the AI assistant's response is harmful.",
}


def ecs_finding(
    verdict: Verdict,
    disclosure: Disclosure | None = None,
    *,
    trace_id: str | None = None,
    replay: Replay | None = None,
) -> dict[str, Any]:
    """The ECS document for a harmful ``verdict`` (nested objects, no dotted keys)."""
    shown = disclosure or Disclosure(verdict)
    kind = detection(verdict)
    severity = severity_of(verdict)
    reason = shown.reason
    digests = shown.digests()
    hashes = [d["sha256"] for d in digests.values() if d is not None]
    doc: dict[str, Any] = {
        "@timestamp": iso_time(verdict.moderated_at),
        "ecs": {"version": ECS_VERSION},
        "message": f"{title(verdict)}. {reason}",
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["denied"],
            "action": kind,
            "id": finding_uid(verdict.event_id, replay),
            "severity": severity.ocsf_id,
            "risk_score": float(_RISK[severity]),
            "risk_score_norm": float(_RISK[severity]),
            "reason": reason,
            "dataset": "guardstream.findings",
            "module": "guardstream",
            "provider": "guardstream",
            "start": iso_time(verdict.event_timestamp),
            "created": iso_time(verdict.moderated_at),
        },
        "rule": {
            "id": f"guardstream.{kind}",
            "name": f"GuardReasoner: {kind.replace('_', ' ')}",
            "category": "harmful content",
            "description": _RULE_DESCRIPTION[kind],
            "ruleset": PRODUCT,
            "version": verdict.model or "unknown",
            "reference": GUARD_REFERENCE,
            "author": [PRODUCT],
        },
        "tags": [c.tag for c in verdict.categories] or [UNCLASSIFIED],
        "user": {"id": verdict.user_id},
        "related": {"user": [verdict.user_id], "hash": hashes},
        "observer": {"vendor": PRODUCT, "product": PRODUCT, "type": "guard", "version": PRODUCT_VERSION},
        "gen_ai": _gen_ai(verdict, shown),
        "labels": _labels(verdict, shown, severity, digests),
    }
    if verdict.categories:
        doc["threat"] = {
            "framework": HAZARD_FRAMEWORK,
            "technique": {
                "id": [c.tag for c in verdict.categories],
                "name": [c.name for c in verdict.categories],
            },
        }
    if trace_id is not None:
        doc["trace"] = {"id": trace_id}
    if replay is not None:
        doc["tags"].append("replay")
        original = replay.to_dict(verdict.event_id)["original"]
        doc["labels"].update(
            {
                "replay_run_id": replay.run_id,
                "original_finding_id": original["finding_uid"],
                "original_model": original["model"] or "",
                "original_outcome": original["outcome"] or "",
            }
        )
    return doc


def _gen_ai(verdict: Verdict, shown: Disclosure) -> dict[str, Any]:
    served_by = provider(verdict)
    gen_ai: dict[str, Any] = {"operation": {"name": "text_completion"}}
    if served_by:
        gen_ai["provider"] = {"name": served_by}
    if verdict.model:
        gen_ai["request"] = {"model": verdict.model}
        gen_ai["response"] = {"model": verdict.model}
    usage = {
        k: v
        for k, v in (("input_tokens", verdict.prompt_tokens), ("output_tokens", verdict.completion_tokens))
        if v is not None
    }
    if usage:
        gen_ai["usage"] = usage
    if shown.include_text:
        messages = [_message("user", verdict.request_text)]
        if verdict.response_text is not None:
            messages.append(_message("assistant", verdict.response_text))
        gen_ai["input"] = {"messages": messages}
        output = _message("assistant", verdict.raw)
        if verdict.finish_reason:
            output["finish_reason"] = verdict.finish_reason
        gen_ai["output"] = {"messages": [output]}
    return gen_ai


def _message(role: str, text: str) -> dict[str, Any]:
    """One message in the OpenTelemetry GenAI message shape."""
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def _labels(
    verdict: Verdict, shown: Disclosure, severity: Severity, digests: dict[str, Any]
) -> dict[str, Any]:
    labels: dict[str, Any] = {
        "conversation_id": verdict.conversation_id,
        "severity": severity.label,
        "answer_request": _value(verdict.request),
        "answer_completion": _value(verdict.completion),
        "answer_response": _value(verdict.response),
        "request_sha256": digests["request"]["sha256"],
        "request_length": str(digests["request"]["length"]),
    }
    if digests["response"] is not None:
        labels["response_sha256"] = digests["response"]["sha256"]
        labels["response_length"] = str(digests["response"]["length"])
    harms = shown.harms()
    if harms:
        labels["harms"] = "; ".join(harms)
    if verdict.finish_reason:
        labels["finish_reason"] = verdict.finish_reason
    exposed = exposure(verdict.request, verdict.completion, verdict.response)
    labels["exposure"] = exposed.value if exposed is not None else "none"
    return labels


def _value(answer: Any) -> str:
    return answer.value if answer is not None else "none"


def mark_ecs_truncated(doc: dict[str, Any], cut: list[str], size: int) -> None:
    """Where an ECS document shrunk to fit the broker says what was cut (``labels.truncated``)."""
    labels = doc.setdefault("labels", {})
    labels["truncated"] = cut
    labels["untruncated_bytes"] = str(size)
