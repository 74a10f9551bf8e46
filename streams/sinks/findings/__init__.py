"""SIEM findings of harmful verdicts: Elastic Common Schema and OCSF Detection Finding.

One finding per format per harmful verdict (guard failures — ``unparsed`` /
``engine_error`` verdicts blocked by the fail-closed policy — are service
health, not detected harm: they stay on ``moderation.alerts`` as
``guard_failure``). Both formats show the chat through a
:class:`~streams.sinks.disclosure.Disclosure`, so the privacy default applies.
"""

from __future__ import annotations

from streams.sinks.findings.common import UNCLASSIFIED, Replay, finding_uid, trace_id_from
from streams.sinks.findings.ecs import ECS_VERSION, ecs_finding
from streams.sinks.findings.ocsf import OCSF_VERSION, ocsf_finding

__all__ = [
    "ECS_VERSION",
    "OCSF_VERSION",
    "UNCLASSIFIED",
    "Replay",
    "ecs_finding",
    "finding_uid",
    "ocsf_finding",
    "trace_id_from",
]
