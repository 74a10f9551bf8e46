"""Training data from reviews: ``training`` (pure: labels, agreeing outputs, SFT/DPO records),
``source`` (reads the store), ``cli`` (``guardstream export``)."""

from __future__ import annotations

__all__: list[str] = []
