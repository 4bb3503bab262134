"""`python -m bench rules`: rule matching speed, compile time and memory (issue 3, point 9).

Articles: 1,000 of 3-5 KB built from varied text (English wire sentences with names, numbers
and curly quotes, some with accents, some Korean/Japanese/Chinese paragraphs), deterministic.
Rule sets of 10, 100, 1,000 and 10,000 rules shaped like a desk's (``make_rules``), and the
first, broad generator at 10,000 (``make_broad_rules``) to show what many matches cost. Every
figure includes folding and tokenising the text and explaining every match (``Matcher.match``
from an Article). The naive baseline is one compiled regex per rule tried in a loop over the
folded text.
"""

from __future__ import annotations

import gc
import random
import re
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

from monitor.rules import Entity, Rule, compile_rules, parse_query
from monitor.rules.matcher import MAX_HITS_PER_TERM
from monitor.schema import Article
from monitor.text import fold

SEED = 20240601
ARTICLES = 1000
RULE_COUNTS = (10, 100, 1000, 10_000)
NAIVE_ARTICLES = 20
PASSES = 5

_SENTENCES = [
    "North Korea fired what appeared to be a short-range ballistic missile into the sea on {day}, "
    "South Korea's military said, the latest in a series of launches.",
    "The {org} said the {adj} drone was intercepted {num} kilometres from the border.",
    "Officials in {city} declined to comment on reports of a new defence agreement.",
    "\u201cWe will respond firmly,\u201d a spokesperson for the {org} told reporters in {city}.",
    "Analysts at {org} noted that shipments of artillery shells had risen {num}% since March.",
    "The ministry's statement \u2014 issued late on {day} \u2014 gave no further details.",
    "Satellite imagery reviewed by {org} showed construction at a site near {city}.",
    "Prices for rice and fuel rose sharply in the {adj} provinces, according to traders.",
    "The summit in {city} ended without a joint statement on the {adj} question.",
    "Defence ministers from {num} countries met to discuss supply chains for munitions.",
    "Le ministre a déclaré à {city} que la coopération militaire se poursuivrait.",
    "A court in {city} sentenced {num} people over the protests, state media reported.",
    "Shipping through the strait resumed after a {adj} pause, the port authority said.",
    "The central bank held rates at {num}%, citing inflation and a weaker currency.",
    "Exports of semiconductors climbed for a {adj} month, customs data showed.",
]
_ASIAN = [
    "북한은 {day} 동해상으로 탄도미사일을 발사했다고 합동참모본부가 밝혔다.",
    "北朝鮮は{day}、弾道ミサイルを発射したと防衛省が発表した。",
    "朝鲜{day}向东部海域发射了一枚弹道导弹，韩国军方表示。",
]
_FILL = {
    "day": ["Monday", "Tuesday", "Thursday", "Saturday"],
    "org": ["Pentagon", "Unification Ministry", "IAEA", "Kremlin", "NATO", "CSIS", "RAND"],
    "adj": ["unmanned", "second", "northern", "disputed", "coastal", "record", "brief"],
    "city": ["Seoul", "Pyongyang", "Tokyo", "Beijing", "Moscow", "Kyiv", "Washington", "Zürich"],
    "num": ["3", "12", "40", "250", "1,200"],
}


def _sentence(rng: random.Random, pool: list[str]) -> str:
    template = rng.choice(pool)
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(_FILL[m.group(1)]), template)


def make_articles(count: int = ARTICLES, seed: int = SEED) -> list[Article]:
    """Deterministic 3-5 KB articles; about one in ten has an Asian-script paragraph."""
    rng = random.Random(seed)
    now = datetime(2024, 6, 1, tzinfo=UTC)
    articles = []
    for i in range(count):
        target = rng.randint(3000, 5000)
        parts: list[str] = []
        size = 0
        while size < target:
            pool = _ASIAN if rng.random() < 0.03 and i % 10 == 0 else _SENTENCES
            sentence = _sentence(rng, pool)
            parts.append(sentence)
            size += len(sentence) + 1
        content = " ".join(parts)[:target]
        articles.append(
            Article(
                id=f"a{i}",
                feed="bench",
                feed_url="https://example.org/rss",
                title=_sentence(rng, _SENTENCES)[:120],
                summary=_sentence(rng, _SENTENCES),
                content=content,
                fetched_at=now,
            )
        )
    return articles


#: Function words: no desk writes a rule on one of these alone.
_FUNCTION_WORDS = frozenset(
    "after according declined ended from gave have into late near noted over said since that"
    " their through told were what will with without".split()
)
#: Entities this corpus is about; the rest of a desk's entities are invented below.
_CORPUS_ENTITIES = {
    "north-korea": ("North Korea", "DPRK", "Pyongyang", "북한", "北朝鮮"),
    "south-korea": ("South Korea", "Seoul", "한국"),
    "russia": ("Russia", "Kremlin", "Moscow"),
    "nato": ("NATO", "North Atlantic Treaty Organization"),
    "iaea": ("IAEA", "International Atomic Energy Agency"),
    "japan": ("Japan", "Tokyo"),
}


def _topic_words() -> list[str]:
    """Content words of the article text: what a desk's topic terms look like in this corpus."""
    found = {w.lower() for s in _SENTENCES for w in re.findall(r"(?<!\{)\b[A-Za-z]{4,}\b", s)}
    return sorted(found - _FUNCTION_WORDS)


def _invented(rng: random.Random, count: int) -> list[str]:
    """Made-up words: the names, places and topic words of everything else a desk follows."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {"".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(count)}
    return sorted(words)


def make_rules(count: int, seed: int = SEED) -> tuple[list[Rule], dict[str, Entity]]:
    """``count`` rules shaped like a desk's: mostly specific, each anchored on a name.

    Every rule has an *anchor*: an entity (45%: ``@id``, any of 2-4 aliases), a quoted phrase of
    2-3 words (35%) or a rare word or prefix wildcard (20%). Most rules qualify the anchor:
    ``A``, ``A OR A``, ``A AND (q OR q)``, ``A AND q NOT q``, ``A NEAR/5 q``,
    ``(A OR A) AND q``, ``A NOT A``. Qualifiers ``q`` are topic words or wildcards, a third of
    them from this corpus's text (the rest stand for other topics). Words are drawn from the
    corpus's content words (30% of phrase words, never function words) and from 30,000
    invented words. Entities: one per four rules (at least 50), six of them those of this
    corpus (North Korea, South Korea, Russia, NATO, IAEA, Japan), referenced like any other.
    """
    rng = random.Random(seed + count)
    topic = _topic_words()
    invented = _invented(rng, 30000)
    entities = {eid: Entity(eid, aliases) for eid, aliases in _CORPUS_ENTITIES.items()}
    for i in range(max(50, count // 4) - len(entities)):
        aliases = tuple(
            " ".join(rng.choice(invented) for _ in range(rng.randint(1, 3)))
            for _ in range(rng.randint(2, 4))
        )
        entities[f"e{i}"] = Entity(f"e{i}", aliases)
    entity_ids = sorted(entities)

    def word(topic_share: float) -> str:
        return rng.choice(topic) if rng.random() < topic_share else rng.choice(invented)

    def anchor() -> str:
        kind = rng.random()
        if kind < 0.45:
            return f"@{rng.choice(entity_ids)}"
        if kind < 0.8:
            return '"' + " ".join(word(0.3) for _ in range(rng.randint(2, 3))) + '"'
        rare = rng.choice(invented)
        return rare[:5] + "*" if rng.random() < 0.4 else rare

    def qualifier() -> str:
        chosen = word(1 / 3)
        return chosen[: max(4, len(chosen) - 2)] + "*" if rng.random() < 0.4 else chosen

    rules = []
    for i in range(count):
        shape = rng.random()
        if shape < 0.2:
            query = anchor()
        elif shape < 0.35:
            query = f"{anchor()} OR {anchor()}"
        elif shape < 0.6:
            query = f"{anchor()} AND ({qualifier()} OR {qualifier()})"
        elif shape < 0.7:
            query = f"{anchor()} AND {qualifier()} NOT {qualifier()}"
        elif shape < 0.8:
            query = f"{anchor()} NEAR/5 {qualifier()}"
        elif shape < 0.95:
            query = f"({anchor()} OR {anchor()}) AND {qualifier()}"
        else:
            query = f"{anchor()} NOT {anchor()}"
        rules.append(Rule(id=f"r{i}", expr=parse_query(query)))
    return rules, entities


def make_broad_rules(count: int, seed: int = SEED) -> tuple[list[Rule], dict[str, Entity]]:
    """The first generator, kept to show what many matches per article cost.

    Terms are drawn alike for every position of a rule, so ``said OR xyz`` or ``ministry NOT
    xyz`` (one common word of this corpus alone) are frequent, and such a rule matches almost
    every article: 27 matches per article at 10,000 rules.
    """
    rng = random.Random(seed + count)
    text_words = sorted(
        {w for s in _SENTENCES for w in re.findall(r"[A-Za-z]{4,}", s) if not w.startswith("{")}
    )
    vocab = text_words + _invented(rng, 30000)
    entities = {
        f"e{i}": Entity(
            f"e{i}", tuple(f"{rng.choice(vocab)} {rng.choice(vocab)}" for _ in range(4))
        )
        for i in range(max(5, count // 20))
    }
    entities["e0"] = Entity("e0", ("North Korea", "DPRK", "Pyongyang", "북한", "北朝鮮"))
    entities["e1"] = Entity("e1", ("South Korea", "Seoul", "한국"))

    def term() -> str:
        kind = rng.random()
        if kind < 0.45:
            return rng.choice(vocab)
        if kind < 0.7:
            return f'"{rng.choice(vocab)} {rng.choice(vocab)}"'
        if kind < 0.85:
            return rng.choice(vocab)[:5] + "*"
        return f"@{rng.choice(sorted(entities))}"

    rules = []
    for i in range(count):
        shape = rng.random()
        if shape < 0.3:
            query = f"{term()} OR {term()}"
        elif shape < 0.6:
            query = f"{term()} AND ({term()} OR {term()})"
        elif shape < 0.75:
            query = f"{term()} NOT {term()}"
        elif shape < 0.9:
            query = f"{term()} NEAR/5 {term()}"
        else:
            query = f"({term()} OR {term()}) {term()} NOT {term()}"
        rules.append(Rule(id=f"r{i}", expr=parse_query(query)))
    return rules, entities


def _naive(rules: list[Rule], entities: dict[str, Entity]) -> list[re.Pattern[str]]:
    """One regex per rule: any of its positive terms as whole words (a generous lower bound)."""
    from monitor.rules.query import EntityRef, positive_atoms

    patterns = []
    for rule in rules:
        alternatives = []
        for atom in positive_atoms(rule.expr):
            phrases = entities[atom.id].aliases if isinstance(atom, EntityRef) else [atom.text]
            for phrase in phrases:
                body = r"\W+".join(re.escape(w) for w in fold(phrase).split())
                tail = r"\w*" if not isinstance(atom, EntityRef) and atom.prefix else r"\b"
                alternatives.append(r"\b" + body + tail)
        patterns.append(re.compile("|".join(alternatives)))
    return patterns


def _best_pass(articles: list[Article], run: Callable[[Article], object]) -> float:
    """CPU seconds per article of the fastest of ``PASSES`` passes.

    CPU time of this process, not wall time: the figures are per core, and a shared machine
    (other processes on the same cores) would otherwise add their time to ours.
    """
    best = float("inf")
    for _ in range(PASSES):
        gc.collect()
        start = time.process_time()
        for article in articles:
            run(article)
        best = min(best, time.process_time() - start)
    return best / len(articles)


def _time_matching(
    articles: list[Article], rules: list[Rule], entities: dict[str, Entity]
) -> tuple[float, float, int]:
    """Seconds per article of ``match`` (explained) and of deciding alone; matches found."""
    matcher = compile_rules(rules, entities)
    for article in articles[:50]:  # warm the folding table
        matcher.match(article)
    found = sum(len(matcher.match(article)) for article in articles)
    explained = _best_pass(articles, matcher.match)
    decided = _best_pass(articles, matcher.matching_rules)
    return explained, decided, found


def _time_naive(articles: list[Article], rules: list[Rule], entities: dict[str, Entity]) -> float:
    patterns = _naive(rules, entities)
    start = time.process_time()
    for article in articles:
        texts = [fold(t) for t in (article.title, article.summary, article.content)]
        for pattern in patterns:
            for text in texts:
                if pattern.search(text):
                    break
    return (time.process_time() - start) / len(articles)


def _compile_cost(rules: list[Rule], entities: dict[str, Entity]) -> tuple[float, float]:
    gc.collect()
    start = time.perf_counter()
    compile_rules(rules, entities)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    matcher = compile_rules(rules, entities)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del matcher
    return seconds, current / 2**20


def run() -> str:
    articles = make_articles()
    kb = (
        sum(len(a.title) + len(a.summary) + len(a.content) for a in articles) / len(articles) / 1000
    )
    lines = [
        "<!-- section: bench_rules -->",
        "## Rule matching",
        "",
        "Command: `python -m bench rules` (also part of `make bench`).",
        "",
        f"{len(articles):,} articles of {kb:.1f} KB on average (title + summary + content, 3-5 KB "
        "content from varied wire sentences, curly quotes and dashes, some accents, one in ten "
        "with Korean/Japanese/Chinese text). Every time per article includes folding and "
        "tokenising the text and explaining every match (hits with offsets into the original "
        "text, snippet). One core, one process; each time is the CPU time of the fastest of "
        f"{PASSES} passes over all articles.",
        "",
        "Rule sets (`make_rules`), built like a desk's: every rule is anchored on something "
        "specific, an entity (45%, 2-4 aliases each), a quoted phrase of 2-3 words (35%) or a "
        "rare word or prefix wildcard (20%), alone, OR-ed, or qualified: `A AND (q OR q)`, "
        "`A AND q NOT q`, `A NEAR/5 q`, `(A OR A) AND q`, `A NOT A`. Qualifiers are topic "
        "words or wildcards, a third from this corpus's text; phrase words are 30% from it; "
        "function words never stand alone. One entity per four rules (at least 50), six of "
        "them the corpus's own (North Korea, South Korea, Russia, NATO, IAEA, Japan: named in "
        "nearly every article), referenced like any other. Matches per article grow with the "
        "number of rules, as they would on a desk. The *broad* row uses the first generator, "
        "whose rules often amount to one common word of this corpus alone (`statement OR "
        "xyz`), so nearly every article matches 27 rules: it shows what a match costs.",
        "",
        "| rules | compile | compiled matcher memory (tracemalloc) | time per article"
        " | articles/s | matches/article | deciding only | explaining, per match |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    results: dict[int, float] = {}
    decided_at: dict[int, float] = {}
    found_at: dict[int, float] = {}
    compile_at_max = (0.0, 0.0)
    per_match: list[float] = []
    rows: list[tuple[str, Callable[[int], tuple[list[Rule], dict[str, Entity]]], int]] = [
        (f"{count:,}", make_rules, count) for count in RULE_COUNTS
    ]
    rows.append((f"{RULE_COUNTS[-1]:,} broad", make_broad_rules, RULE_COUNTS[-1]))
    for label, generator, count in rows:
        rules, entities = generator(count)
        seconds, megabytes = _compile_cost(rules, entities)
        per_article, decided, found = _time_matching(articles, rules, entities)
        matches = found / len(articles)
        explaining = (per_article - decided) / matches if matches >= 0.5 else None
        if explaining is not None:
            per_match.append(explaining)
        if generator is make_rules:
            results[count] = per_article
            decided_at[count] = decided
            found_at[count] = matches
            if count == RULE_COUNTS[-1]:
                compile_at_max = (seconds, megabytes)
                naive_rules, naive_entities = rules, entities
        lines.append(
            f"| {label} | {seconds * 1000:.0f} ms | {megabytes:.1f} MB | "
            f"{per_article * 1e6:.0f} µs | {1 / per_article:,.0f} | {matches:.2f} | "
            f"{decided * 1e6:.0f} µs | "
            + (f"{explaining * 1e6:.0f} µs |" if explaining is not None else "- |")
        )
    naive = _time_naive(articles[:NAIVE_ARTICLES], naive_rules, naive_entities)
    top = RULE_COUNTS[-1]
    floor = decided_at[top] / results[RULE_COUNTS[0]]
    ratio = results[top] / results[RULE_COUNTS[0]]
    speedup = naive / results[top]
    rate = 1 / results[top]
    seconds, megabytes = compile_at_max

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines += [
        "",
        "*Deciding only* is `Matcher.matching_rules`: the same decision without explanations; "
        "*explaining, per match* is the difference divided by the matches. An explanation "
        f"lists, per positive term and field, the first {MAX_HITS_PER_TERM} occurrences "
        "(`MAX_HITS_PER_TERM`), found in the field's marked text (the folded text with every "
        "non-word character a space, so its offsets are the folded ones): `str.find` for a "
        "one-word term, a regex for a phrase. Offsets are mapped to the original text only "
        "when some character did not fold to exactly one. Hits are shared by the rules that "
        "name the same term, so a match on an entity other rules also matched costs less.",
        "",
        f"Where the time goes at {top:,} rules: deciding is "
        f"{decided_at[top] / decided_at[RULE_COUNTS[0]]:.1f} × the {RULE_COUNTS[0]}-rule "
        "figure (the automaton reports every occurrence of every term found, about twenty "
        "times as many occurrences, and more rules are triggered and evaluated), and explaining "
        f"{found_at[top]:.1f} matches per article is "
        f"{(results[top] - decided_at[top]) * 1e6:.0f} µs of the {results[top] * 1e6:.0f} µs."
        + (
            f" Deciding alone at {top:,} rules is {floor:.2f} × the whole {RULE_COUNTS[0]}-rule "
            "time, so the 1.5 × target is out of reach of this design even with free "
            "explanations: folding and one automaton pass are the floor, and the pass slows "
            "with the number of terms it finds."
            if floor > 1.5
            else ""
        ),
        "",
        f"Naive baseline (one compiled regex per rule, tried in a loop, on the same folded "
        f"(lower-cased) text, word boundaries; measured on the first {NAIVE_ARTICLES} articles "
        f"and extrapolated per article): {naive * 1000:.1f} ms per article with {top:,} rules. "
        "The baseline regexes only test each rule's positive terms, so it is a lower bound on "
        "what a naive matcher costs.",
        "",
        "| target | measured | |",
        "|---|---:|---|",
        f"| time per article at 10,000 rules ≤ 1.5 × at 10 rules | {ratio:.2f} × "
        f"| {verdict(ratio <= 1.5)} |",
        f"| ≥ 3,000 articles/s at 10,000 rules | {rate:,.0f} /s | {verdict(rate >= 3000)} |",
        f"| ≥ 1,000 × faster than the naive baseline at 10,000 rules | {speedup:,.0f} × "
        f"| {verdict(speedup >= 1000)} |",
        f"| compile 10,000 rules < 2 s | {seconds:.2f} s | {verdict(seconds < 2)} |",
        f"| compiled matcher < 100 MB | {megabytes:.1f} MB | {verdict(megabytes < 100)} |",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
