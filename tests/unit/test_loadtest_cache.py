"""The cache benchmark's workload: the share of repeats it promises, Zipf-distributed."""

from __future__ import annotations

from collections import Counter

import orjson

from loadtest.cache import payloads


def test_the_stream_repeats_the_asked_share_of_messages_with_a_long_tail() -> None:
    data, share = payloads(3000, 0.3)
    requests = [orjson.loads(value)["request"] for _, value in data]
    seen: set[str] = set()
    repeats = 0
    for request in requests:
        repeats += request in seen
        seen.add(request)
    assert share == repeats / len(requests)
    assert 0.3 <= share < 0.34
    common = Counter(r for r in requests if r.startswith("common"))
    counts = sorted(common.values(), reverse=True)
    assert counts[0] > 10 * counts[len(counts) // 2]  # a few very frequent, a long tail
