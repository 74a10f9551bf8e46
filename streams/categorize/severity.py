"""Severity of a harmful verdict: the tag's level, moved by what the assistant did.

===============================  ==========================  =================
exposure                         answers                     adjustment
===============================  ==========================  =================
``response_given``               Response: harmful           ``+response_given`` (default +1)
``request_answered``             Request: harmful,           0
                                 Completion: compliance,
                                 Response: unharmful
``request_only``                 Request: harmful, no        0
                                 response checked
``request_refused``              Request: harmful,           ``+request_refused`` (default -1)
                                 Completion: refusal
===============================  ==========================  =================

Levels are clamped to low..critical. With the default adjustments a harmful
response the assistant gave is always rated strictly above the same harm
requested and refused (e.g. S9 critical vs high, S8 medium vs low).
"""

from __future__ import annotations

from enum import StrEnum

from streams.categorize.taxonomy import SeverityAdjust
from streams.parse import Completion, Harm

__all__ = ["Exposure", "adjustment", "exposure"]


class Exposure(StrEnum):
    RESPONSE_GIVEN = "response_given"
    REQUEST_ANSWERED = "request_answered"
    REQUEST_ONLY = "request_only"
    REQUEST_REFUSED = "request_refused"


def exposure(request: Harm | None, completion: Completion | None, response: Harm | None) -> Exposure | None:
    """What harm reached whom; None when neither the request nor the response is harmful."""
    if response is Harm.HARMFUL:
        return Exposure.RESPONSE_GIVEN
    if request is not Harm.HARMFUL:
        return None
    if completion is Completion.REFUSAL:
        return Exposure.REQUEST_REFUSED
    if completion is Completion.COMPLIANCE:
        return Exposure.REQUEST_ANSWERED
    return Exposure.REQUEST_ONLY


def adjustment(kind: Exposure, adjust: SeverityAdjust) -> int:
    if kind is Exposure.RESPONSE_GIVEN:
        return adjust.response_given
    if kind is Exposure.REQUEST_REFUSED:
        return adjust.request_refused
    return 0
