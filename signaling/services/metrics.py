"""Counters the hub keeps for ``/metrics`` (rendered in Prometheus text format by the HTTP layer)."""

from __future__ import annotations

from collections import Counter


class HubMetrics:
    def __init__(self) -> None:
        self.events: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[str] = Counter()

    def count_event(self, namespace: str, event: str) -> None:
        self.events[(namespace, event)] += 1

    def count_error(self, event: str) -> None:
        self.errors[event] += 1
