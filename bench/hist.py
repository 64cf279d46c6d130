"""A latency histogram: logarithmic buckets 1 % wide, exact max, lost samples.

Every sample goes into a bucket, so percentiles cost nothing to record and the
raw histogram can be written to the JSON results. A sample that never arrived
("lost") counts as infinitely late: with more than 1 % lost, p99 is infinite.
"""
from __future__ import annotations

import math
from collections import Counter

_GROWTH = math.log(1.01)


class Histogram:
    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.lost = 0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        micros = max(seconds * 1e6, 1.0)
        self.buckets[int(math.log(micros) / _GROWTH)] += 1
        self.count += 1
        if seconds > self.max:
            self.max = seconds

    def record_lost(self, n: int = 1) -> None:
        self.lost += n

    def merge(self, other: "Histogram") -> None:
        self.buckets.update(other.buckets)
        self.count += other.count
        self.lost += other.lost
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        """Seconds (the bucket's upper edge), inf if the rank falls among the lost."""
        total = self.count + self.lost
        if total == 0:
            return math.nan
        rank = max(1, math.ceil(q * total))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(math.exp((index + 1) * _GROWTH) / 1e6, self.max)
        return math.inf

    def summary(self) -> dict[str, float]:
        return {
            "count": self.count,
            "lost": self.lost,
            "p50_ms": self.quantile(0.50) * 1e3,
            "p95_ms": self.quantile(0.95) * 1e3,
            "p99_ms": self.quantile(0.99) * 1e3,
            "max_ms": (math.inf if self.lost else self.max) * 1e3,
        }

    def to_json(self) -> dict[str, object]:
        return {**self.summary(), "bucket_growth": 1.01,
                "buckets_us_log": {str(k): v for k, v in sorted(self.buckets.items())}}
