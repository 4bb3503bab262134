"""The report of `monitor backtest`: hits per rule, per day, with sample titles (pure)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from monitor.schema import Article

SPARK = "▁▂▃▄▅▆▇█"
SAMPLES = 3


def sparkline(values: list[int]) -> str:
    """One character per value, scaled to the largest; zero is a blank bar."""
    top = max(values, default=0)
    if top == 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, v * (len(SPARK) - 1) // top)] for v in values)


@dataclass
class BacktestReport:
    since: datetime
    until: datetime
    hits: Counter[str] = field(default_factory=Counter)
    per_day: dict[str, Counter[date]] = field(default_factory=lambda: defaultdict(Counter))
    samples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, rule: str, article: Article) -> None:
        self.hits[rule] += 1
        self.per_day[rule][(article.published or article.fetched_at).date()] += 1
        if len(self.samples[rule]) < SAMPLES:
            self.samples[rule].append(article.title or article.url or article.id)

    def days(self) -> list[date]:
        first, last = self.since.date(), self.until.date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def window_days(self) -> float:
        """The window's length in days (a 7-day window touches 8 calendar dates)."""
        return (self.until - self.since).total_seconds() / 86400

    def render(self, articles: int, rule_ids: list[str]) -> str:
        days = self.days()
        span = f"{days[0]} .. {days[-1]}"
        lines = [f"backtest over {articles} stored article(s), {span}; nothing was sent", ""]
        for rule in rule_ids:
            counts = [self.per_day[rule][d] for d in days]
            per_day = self.hits[rule] / max(self.window_days(), 1 / 24)
            lines.append(
                f"{rule}: {self.hits[rule]} hit(s), {per_day:.1f}/day  {sparkline(counts)}"
            )
            lines.extend(f"    - {title}" for title in self.samples[rule])
        return "\n".join(lines)
