"""Console roles (no database imports: the CLI parser uses them)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role"]


class Role(StrEnum):
    VIEWER = "viewer"  # reads verdicts, reviews and the dashboard
    REVIEWER = "reviewer"  # ... and confirms or corrects verdicts
    ADMIN = "admin"  # ... everything a reviewer can

    @property
    def can_review(self) -> bool:
        return self in (Role.REVIEWER, Role.ADMIN)
