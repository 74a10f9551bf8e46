"""Routing: which outputs a verdict goes to. One place, pure, table-tested.

===========================  ===========================  ==================
outcome                      fail_closed (default)        fail_open
===========================  ===========================  ==================
harmful                      block, alert, archive        block, alert, archive
unharmful                    archive                      archive
unparsed / engine_error      block, alert, archive        archive
===========================  ===========================  ==================
"""

from __future__ import annotations

from streams.config import FailPolicy
from streams.verdict.model import Action, Outcome

__all__ = ["route"]

_ALL = (Action.BLOCK, Action.ALERT, Action.ARCHIVE)


def route(outcome: Outcome, policy: FailPolicy) -> tuple[Action, ...]:
    if outcome is Outcome.HARMFUL:
        return _ALL
    if outcome is Outcome.UNHARMFUL:
        return (Action.ARCHIVE,)
    return _ALL if policy is FailPolicy.FAIL_CLOSED else (Action.ARCHIVE,)
