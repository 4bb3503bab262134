"""The compiled matcher: word matching, normalisation traps, operators, gates, explanations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.rules import Entity, Rule, compile_rules, parse_query, parse_structured
from monitor.rules.explain import is_collapsed
from monitor.rules.matcher import MAX_HITS_PER_TERM
from monitor.rules.query import And, Near, Not, QueryError, Term
from monitor.schema import Article, Match, Severity

ENTITIES = {
    "kim-jong-un": Entity("kim-jong-un", ("Kim Jong-un", "Kim Jongun", "김정은", "金正恩")),
    "north-korea": Entity("north-korea", ("North Korea", "DPRK", "Pyongyang", "북한")),
    "russia": Entity("russia", ("Russia", "Moscow")),
}


def article(title: str = "", summary: str = "", content: str = "", **extra: Any) -> Article:
    return Article(
        id="a1",
        feed=extra.pop("feed", "Wire"),
        feed_url="https://example.org/rss",
        title=title,
        summary=summary,
        content=content,
        fetched_at=datetime(2024, 1, 1, tzinfo=UTC),
        **extra,
    )


def rule(query: str | dict[str, Any], **settings: Any) -> Rule:
    expr = parse_query(query) if isinstance(query, str) else parse_structured(query)
    return Rule(id=settings.pop("id", "r"), expr=expr, **settings)


def matches(query: str | dict[str, Any], text: str = "", **kw: Any) -> bool:
    settings = {k: kw.pop(k) for k in list(kw) if k in ("fields", "languages", "feeds", "enabled")}
    tags = kw.pop("tags", ())
    m = compile_rules([rule(query, **settings)], ENTITIES)
    kw.setdefault("content", text)
    return bool(m.match(article(**kw), tags))


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("UAV", "The UAVs flew north", False),
        ("UAV*", "The UAVs flew north", True),
        ("UAV", "A UAV flew north", True),
        ("war", "She won an award", False),
        ("war", "The war goes on", True),
        ("@kim-jong-un", "KIM JONG\u2011UN spoke", True),
        ("@kim-jong-un", "Kim Jong Un spoke", True),
        ("@kim-jong-un", "ＫＩＭ ＪＯＮＧ－ＵＮ spoke", True),
        ("@kim-jong-un", "어제 김정은이 말했다", True),
        ("@kim-jong-un", "北朝鮮の金正恩総書記は", True),
        ("@north-korea", "North Korea\u2019s missiles", True),
        ("@north-korea", "Northern Korean dishes", False),
        ('"open source"', "open-source intelligence", True),
        ('"defense treaty"', "a treaty on defense", False),
        ("café", "CAFE opened", True),
        ("and", "cats and dogs", True),
    ],
)
def test_word_matching_and_normalisation(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("drone strike", "strike by a drone", True),  # implicit AND
        ("drone AND strike", "drone only", False),
        ("drone OR strike", "strike only", True),
        ("drone NOT racing", "drone racing league", False),
        ("drone NOT racing", "drone attack", True),
        ("NOT opinion", "news story", True),
        ("a OR b c", "b only", False),  # AND binds tighter than OR
        ("a OR b c", "a only", True),
        ("(a OR b) c", "a and c", True),
        ("x NEAR/2 y", "x one two y", True),
        ("x NEAR/2 y", "x one two three y", False),
        ("x NEAR/2 y", "y one x", True),
        ("x ONEAR/2 y", "y one x", False),
        ("x ONEAR/2 y", "x one y", True),
        ("NOT x OR z", "x z", True),  # NOT binds tighter than OR
        ("NOT x OR z", "x", False),
        ("a b NEAR/1 c", "a zz b c", True),  # NEAR binds tighter than AND
        ("a b NEAR/1 c", "b zz zz c a", False),
        ('"kamikaze drone*"', "kamikaze drones hit", True),
        ("(x OR w) NEAR/1 y", "w y", True),
    ],
)
def test_operators(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # two terms inside one run of text written without spaces are next to each other
        ("ミサイル NEAR/8 発射", "北朝鮮が弾道ミサイルを発射", True),
        ("导弹 NEAR/5 发射", "朝鲜发射弹道导弹", True),
        ("미사일 NEAR/3 발사", "탄도미사일발사", True),
        ("ミサイル ONEAR/3 発射", "北朝鮮が弾道ミサイルを発射", True),
        ("発射 ONEAR/3 ミサイル", "北朝鮮が弾道ミサイルを発射", False),
        ("ミサイル NEAR/0 ミサイル", "ミサイル", False),  # one occurrence is not near itself
        ("미사일 NEAR/0 발사", "미사일 시험 발사", False),
        ("미사일 NEAR/1 발사", "미사일 시험 발사", True),
        # a Latin word glued to Korean, Japanese or Chinese is still a word
        ("ICBM", "북한이 ICBM을 발사했다", True),
        ("ICBM*", "北朝鮮がICBMを発射", True),
        ("NATO", "NATO首脳会議", True),
        ("UAV", "UAVs를 격추", False),
        ("ICBM NEAR/1 발사했다", "북한이 ICBM을 발사했다", True),
        ('"ICBM級"', "北朝鮮がICBM級の弾道ミサイルを発射", True),
        # ... and a Latin word in a term with such a script is whole too
        ('"NATO 首脳"', "SENATO首脳会議", False),
        ('"NATO 首脳"', "NATO首脳会議", True),
        ('"UN 안보리"', "A gun 안보리 회의", False),
        ('"UN 안보리"', "UN 안보리 회의", True),
        ('"F-35 전투기"', "KF-35 전투기", False),
        ('"미국 CIA"', "미국 CIAO", False),
        ('"미국 CIA*"', "미국 CIAO", True),
        ('"미국 CIA" NEAR/1 회의', "미국 CIA 국장 회의", True),
    ],
)
def test_scripts_written_without_spaces(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


def test_two_terms_in_one_run_of_half_width_kana_are_two_hits() -> None:
    text = "ﾄﾖﾀ､ｶﾞｿﾘﾝ車を値上げ"
    (found,) = compile_rules([rule("トヨタ ガソリン")], ENTITIES).match(article(content=text))
    assert [(h.term, h.text) for h in found.hits] == [("トヨタ", "ﾄﾖﾀ"), ("ガソリン", "ｶﾞｿﾘﾝ")]


def test_a_latin_word_glued_to_korean_is_explained_at_its_own_offsets() -> None:
    text = "북한이 ICBM을 발사했다. 日本は「ICBM級」と"
    m = compile_rules([rule('ICBM OR "ICBM級"')], ENTITIES).match(article(content=text))
    assert [(h.term, h.start, text[h.start : h.end]) for h in m[0].hits] == [
        ("ICBM", 4, "ICBM"),
        ("ICBM", 20, "ICBM"),
        ("ICBM級", 20, "ICBM級"),
    ]


def test_not_binds_tighter_than_near_and_near_tighter_than_and() -> None:
    assert parse_query("a NEAR/2 b NOT c") == And((Near(Term("a"), Term("b"), 2), Not(Term("c"))))
    assert matches("a NEAR/2 b NOT c", "a x b")
    assert not matches("a NEAR/2 b NOT c", "a x b c")
    assert not matches("a NEAR/2 b NOT c", "c first, then a x b")  # NOT c: anywhere
    assert not matches("a NEAR/2 b NOT c", "a x y z b")


@pytest.mark.parametrize(
    ("query", "offset", "side", "op"),
    [
        ("NOT a NEAR/2 b", 0, "NOT a", "NEAR/2"),
        ("a NEAR/2 NOT b", 9, "NOT b", "NEAR/2"),
        ("x (NOT a) ONEAR/3 b", 2, "(NOT a)", "ONEAR/3"),
    ],
)
def test_not_as_a_side_of_near_is_refused_saying_why(
    query: str, offset: int, side: str, op: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert caught.value.offset == offset
    assert caught.value.message == (
        f"'{side}' cannot be a side of {op}: NOT binds tighter than {op}, and {op} needs a term "
        f"or an (x OR y) group of terms on each side; to exclude the pair write NOT (x {op} y)"
    )


@pytest.mark.parametrize(
    ("query", "offset", "message"),
    [
        (
            "a NEAR/2 b NEAR/3 c",
            0,
            "'a NEAR/2 b' cannot be a side of NEAR/3: NEAR/3 needs a term or an (x OR y) group "
            "of terms on each side, not another proximity; write (x NEAR/3 y) AND (y NEAR/3 z)",
        ),
        (
            "a NEAR/2 (b c) d",
            9,
            "'(b c)' cannot be a side of NEAR/2: NEAR/2 needs a term or an (x OR y) group of "
            "terms on each side, not an AND; write (x NEAR/2 y) AND z",
        ),
        (
            "(a OR (b c)) ONEAR/2 d",
            0,
            "'(a OR (b c))' cannot be a side of ONEAR/2: ONEAR/2 needs a term or an (x OR y) "
            "group of terms on each side, and this OR group holds more than terms",
        ),
    ],
)
def test_other_sides_of_near_are_refused_quoting_them(
    query: str, offset: int, message: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert (caught.value.offset, caught.value.message) == (offset, message)


def test_near_never_spans_two_fields() -> None:
    assert not matches("drone NEAR/3 attack", title="drone", summary="attack")
    assert matches("drone NEAR/3 attack", title="drone attack")


def test_phrases_never_span_two_fields() -> None:
    assert not matches('"kim jong"', title="Kim", summary="Jong")


def test_field_prefix_and_rule_fields() -> None:
    assert matches("title:drone", title="drone")
    assert not matches("title:drone", summary="drone")
    assert matches("title:(drone OR uav)", title="uav")
    assert not matches("drone", content="drone", fields=["title", "summary"])
    assert matches("drone", summary="drone", fields=["title", "summary"])


def test_languages_gate_declared_then_detected() -> None:
    english = "The minister said that the drone was shot down over the border on Monday."
    assert matches("drone", english, languages=["en"], language="en-GB")
    assert not matches("drone", english, languages=["de"], language="en-GB")
    assert matches("drone", english, languages=["en"])
    german = "Der Minister sagte, dass die Drohne und das drone nicht mit den Soldaten"
    assert not matches("drone", german, languages=["en"])


def test_languages_gate_follows_the_declared_language_over_the_text() -> None:
    english = "The minister said that the drone was shot down over the border on Monday."
    assert matches("drone", english, languages=["de"], language="de-AT")
    assert not matches("drone", english, languages=["en"], language="de-AT")


def test_feeds_gate_by_name_or_tag_and_disabled_rules() -> None:
    assert matches("drone", "drone", feeds=["Wire"])
    assert not matches("drone", "drone", feeds=["asia"])
    assert matches("drone", "drone", feeds=["asia"], tags=["asia"])
    assert not matches("drone", "drone", enabled=False)


def test_both_forms_give_the_same_results() -> None:
    query = '("defense treaty" OR "mutual defense") AND (Russia OR @north-korea) NOT opinion'
    structured = {
        "all": [{"any": ["defense treaty", "mutual defense"]}, {"any": ["Russia", "@north-korea"]}],
        "none": ["opinion"],
    }
    texts = [
        "Russia and DPRK sign a mutual defense pact",
        "Pyongyang signs defense treaty",
        "opinion: the defense treaty with Russia",
        "a treaty on defense with Russia",
    ]
    for text in texts:
        assert matches(query, text) == matches(structured, text), text


def test_structured_none_excludes_each_of_its_items() -> None:
    # none: [a, b] is NOT (a OR b): any one of them present rejects the article
    spec = {"any": ["drone"], "none": ["racing", "toy"]}
    assert matches(spec, "a drone attack")
    assert not matches(spec, "a drone racing league")
    assert not matches(spec, "a toy drone")
    assert not matches(spec, "a toy drone racing league")


def test_explanation_offsets_index_the_original_text() -> None:
    title = "ＫＩＭ ＪＯＮＧ－ＵＮ inspects kamikaze drones"
    summary = "North Korea\u2019s leader 김정은이 watched."
    m = compile_rules(
        [rule('@kim-jong-un AND "kamikaze drone*"', id="k", severity=Severity.high)], ENTITIES
    )
    (found,) = m.match(article(title=title, summary=summary))
    assert found.rule == "k" and found.severity == "high" and found.article_id == "a1"
    texts = {(h.field, h.text) for h in found.hits}
    assert ("title", "ＫＩＭ ＪＯＮＧ－ＵＮ") in texts
    assert ("title", "kamikaze drones") in texts
    assert ("summary", "김정은") in texts
    for hit in found.hits:
        source = title if hit.field == "title" else summary
        assert source[hit.start : hit.end] == hit.text
    assert found.hits[0].term == "@kim-jong-un"
    assert "ＫＩＭ" in found.snippet


def test_snippet_is_text_around_the_first_hit() -> None:
    content = "word " * 100 + "the drone fell " + "tail " * 100
    m = compile_rules([rule("drone")], ENTITIES)
    (found,) = m.match(article(content=content))
    assert "drone" in found.snippet
    assert found.snippet.startswith("…") and found.snippet.endswith("…")
    assert len(found.snippet) < 260


def test_only_positive_terms_are_explained() -> None:
    m = compile_rules([rule("drone NOT racing")], ENTITIES)
    (found,) = m.match(article(content="a drone show, no race"))
    assert [h.term for h in found.hits] == ["drone"]


def test_many_rules_each_match_reported_in_rule_order() -> None:
    rules = [rule(f"w{i}", id=f"r{i}") for i in range(50)] + [rule("NOT zzz", id="none")]
    m = compile_rules(rules, ENTITIES)
    found = m.match(article(content="w3 and w7"))
    assert [f.rule for f in found] == ["r3", "r7", "none"]


def test_a_matcher_without_terms_still_works() -> None:
    assert compile_rules([], ENTITIES).match(article(content="x")) == []


def test_explanations_equal_validated_models_and_cap_hits_per_term() -> None:
    content = "Drone " * 12 + "and DPRK, North Korea\u2019s drones."
    m = compile_rules([rule("drone* AND @north-korea", id="d")], ENTITIES)
    (found,) = m.match(article(content=content))
    assert Match.model_validate(found.model_dump()) == found
    assert (
        found.model_dump_json()
        == Match.model_validate_json(found.model_dump_json()).model_dump_json()
    )
    drones = [h for h in found.hits if h.term == "drone*"]
    assert len(drones) == MAX_HITS_PER_TERM
    assert [h.start for h in drones] == [0, 6, 12, 18, 24]
    assert {h.text for h in found.hits if h.term == "@north-korea"} == {"DPRK", "North Korea"}
    for hit in found.hits:
        assert content[hit.start : hit.end] == hit.text


@given(st.text(alphabet=st.sampled_from(list("ab \t\n\u00a0\u2009\u3000\x85.")), max_size=12))
def test_snippet_collapse_check_agrees_with_split_join(text: str) -> None:
    # the snippet skips collapsing whitespace when it is already collapsed: never wrongly
    assert is_collapsed(text) == (" ".join(text.split()) == text)
