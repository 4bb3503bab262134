"""Text folding: what "the same word" means for rules, fingerprints and identities."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.text import (
    IDENTITY_RANGES,
    SPACELESS,
    OffsetMap,
    TokenStream,
    fold,
    fold_map,
    token_spans,
    token_stream,
    tokens,
    words,
)


def test_case_accents_dashes_and_quotes_fold_alike() -> None:
    assert fold("KIM JONG\u2011UN") == fold("Kim Jong-un") == "kim jong-un"
    assert fold("Café Zürich") == "cafe zurich"
    assert fold("Łódź, Øresund") == "lodz, oresund"
    assert fold("\u201cquoted\u201d \u2018single\u2019") == "\"quoted\" 'single'"
    assert fold("Straße") == "strasse"


@pytest.mark.parametrize(
    "text", ["カﾞソリン", "カ\u3099ソリン", "ｶ\u3099ｿﾘﾝ", "は\u3099", "가\u11a8", "ᄀ\u1161\u11a8"]
)
def test_a_mark_composes_with_the_character_before_it_as_nfkc_says(text: str) -> None:
    """NFD Japanese (the voicing mark apart), half-width marks, a final jamo after a syllable."""
    assert fold(text) == unicodedata.normalize("NFKC", text)
    folded, starts, ends = fold_map(text)
    assert folded == fold(text) and len(starts) == len(ends) == len(folded)


def test_half_width_kana_with_voicing_marks_fold_to_full_width_kana() -> None:
    """``ｶﾞｿﾘﾝ`` (half-width, the mark a separate character) is the word ``ガソリン``."""
    assert fold("ｶﾞｿﾘﾝ価格") == fold("ガソリン価格") == "ガソリン価格"
    text = "価格 ｶﾞｿﾘﾝ"
    start, end = OffsetMap(text).span(3, 7)
    assert text[start:end] == "ｶﾞｿﾘﾝ"
    assert text[slice(*OffsetMap(text).span(4, 5))] == "ｿ"  # a kana, not the whole run


def test_a_change_to_or_from_a_script_without_spaces_separates_words() -> None:
    """Korean particles and Japanese or Chinese text attach to Latin acronyms: ``ICBM을`` holds
    the word ``icbm``, as ``ICBM 을`` would; text in one script stays one run."""
    assert tokens("북한이 ICBM을 발사") == ["북한이", "icbm", "을", "발사"]
    assert tokens("NATO首脳会議で F-35を") == ["nato", "首脳会議で", "f", "35", "を"]
    assert tokens("時々ミサイル") == ["時々ミサイル"]
    assert tokens("UAVs를") == ["uavs", "를"]


def test_fullwidth_letters_are_ordinary_letters() -> None:
    assert fold("ＵＡＶ ＫＩＭ") == "uav kim"


def test_japanese_voicing_marks_are_not_accents() -> None:
    assert fold("ガス") == "ガス"
    assert fold("ガス") != fold("カス")


def test_cjk_and_hangul_fold_to_themselves() -> None:
    """The claim behind the fast path: these ranges need no per-character folding."""
    from monitor.text import _fold_slow

    for start, end in IDENTITY_RANGES:
        for code in range(start, end + 1):
            assert _fold_slow(chr(code)) == chr(code), hex(code)


def test_possessive_s_is_dropped_and_hyphens_separate_words() -> None:
    assert tokens("North Korea\u2019s drones") == ["north", "korea", "drones"]
    assert tokens("open-source intelligence") == ["open", "source", "intelligence"]
    assert tokens("x'sy") == ["x", "sy"]
    assert tokens("People`s Army") == tokens("People’s Army") == ["people", "army"]
    assert fold("Korea`s “army”") == fold('Korea\'s "army"')


def test_words_keeps_its_meaning_for_fingerprints() -> None:
    assert words("Seoul's KIM-Jong un") == ["seoul", "s", "kim", "jong", "un"]


def test_fold_map_points_hits_back_at_the_original_text() -> None:
    text = "ＫＩＭ says Cafe\u0301 is near Straße"
    folded, starts, ends = fold_map(text)
    assert len(folded) == len(starts) == len(ends)
    i = folded.index("kim")
    assert text[starts[i] : ends[i + 2]] == "ＫＩＭ"
    j = folded.index("cafe")
    assert text[starts[j] : ends[j + 3]] == "Cafe\u0301"
    k = folded.index("strasse")
    assert text[starts[k] : ends[k + 6]] == "Straße"


_TEXT = st.text(
    alphabet=st.sampled_from(
        [
            *"abcXYZ019 -'.,\u2019\u2011éß",
            "Ｋ",
            "김",
            "정",
            "ガ",
            "北",
            "・",
            "ー",
            "ｶ",
            "ﾞ",
            "゛",
            "カ",
            "\u3099",
            "가",
            "\u11a8",
            "\u0301",
            "İ",
            "_",
        ]
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_token_stream_and_spans_agree(text: str) -> None:
    """The fast stream (bytes path) and the spans used for offsets give the same words."""
    folded = fold(text)
    spans = token_spans(folded)
    assert token_stream(folded).split() == [folded[a:b] for a, b in spans]


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_fold_map_is_consistent_with_fold(text: str) -> None:
    folded, starts, ends = fold_map(text)
    assert folded == fold(text)
    assert len(starts) == len(ends) == len(folded)
    assert all(0 <= s < e <= len(text) for s, e in zip(starts, ends, strict=True))
    assert starts == sorted(starts)


@settings(max_examples=200, deadline=None)
@given(_TEXT, st.data())
def test_offset_map_agrees_with_fold_map(text: str, data: st.DataObject) -> None:
    """The segment-wise map used to explain hits gives the per-character map's answer."""
    folded, starts, ends = fold_map(text)
    if not folded:
        return
    start = data.draw(st.integers(0, len(folded) - 1))
    end = data.draw(st.integers(start + 1, len(folded)))
    got = OffsetMap(text).span(start, end)
    assert got[0] == starts[start]
    assert got[1] >= ends[end - 1]
    assert folded[start:end] in fold(text[got[0] : got[1]])


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_fast_fold_agrees_with_the_segment_fold(text: str) -> None:
    """The replace-per-character path gives what folding run by run gives."""
    from monitor.text import _fold_segments

    assert fold(text) == _fold_segments(text)
    assert fold(text + "\u201cZürich\u201d \u2014 ok") == _fold_segments(
        text + "\u201cZürich\u201d \u2014 ok"
    )


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_stream_words_are_found_in_marked_text_at_their_folded_offsets(text: str) -> None:
    """Every word of the stream is, in order, where ``token_spans`` says it is in ``folded``,
    and at that offset plus one in the padded ``marked`` text (explanations rely on it), ending
    at a space or, in text with scripts written without spaces, where the script changes."""
    folded = fold(text)
    stream = TokenStream(folded)
    assert len(stream.marked) == len(folded) + 2
    at = 1
    for start, end in token_spans(folded):
        word = folded[start:end]
        assert stream.text[at : at + len(word)] == word
        assert stream.marked[start + 1 : end + 1] == word
        edges = ((word[0], stream.marked[start]), (word[-1], stream.marked[end + 1]))
        for inside, outside in edges:
            assert outside == " " or (
                stream.spaceless and _spaceless(inside) != _spaceless(outside)
            ), (word, outside)
        at += len(word) + 1
    assert at == max(1, len(stream.text)) or stream.text.strip() == ""


def _spaceless(char: str) -> bool:
    return re.match(f"[{SPACELESS}]", char) is not None
