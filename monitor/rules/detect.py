"""A small offline language guesser for the ``languages:`` gate, used only when a feed is silent.

Why not a package: the well-known detectors either download models or weigh megabytes, and the
gate needs only "is this English, Korean, Japanese, ...". So: the script decides for the
languages with their own script (Hangul: ko; kana: ja; Han alone: zh; Cyrillic: ru, or uk with
its own letters; Arabic, Hebrew, Greek, Thai, Devanagari), and for Latin-script text the most
frequent function words decide among en, de, fr, es, it, pt, nl, pl, tr, id, sv.

Limits, documented in README: a text needs a few function words (a headline alone may give
``None``); closely related languages (es/pt, id/ms, the Scandinavian languages) can be confused;
mixed-language text gives the dominant language. ``None`` means "unknown", and a rule with
``languages:`` does not match an article whose language is unknown.
"""

from __future__ import annotations

import re

SAMPLE_CHARS = 2000

_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to in is that for with was on are by this from has have it its said",
        "de": "der die und das ist nicht mit den von ein eine auf des sich dem im zu auch wird",
        "fr": "le la les et des est une pour dans que qui sur par pas au du avec sont ce il",
        "es": "el la los las y del que en por con una para es se al lo como mas sus fue",
        "it": "il di che la per non una sono della gli con del nel alla anche le si ha e",
        "pt": "o a os as que do da em um uma para com nao por mais dos das foi ao se",
        "nl": "de het een en van is dat op te zijn niet met voor die aan ook er bij",
        "pl": "i w na nie sie z do ze jest to jak ale przez od po sa dla co tak",
        "tr": "ve bir bu da de icin ile olarak cok daha gibi olan en ama ne kadar",
        "id": "dan yang di ini itu dengan untuk dari tidak dalam akan pada juga ke",
        "sv": "och att det som en ar pa for med har av inte den till om var ett",
    }.items()
}
_SCRIPTS: list[tuple[str, re.Pattern[str]]] = [
    ("ko", re.compile(r"[\uac00-\ud7a3]")),
    ("ja", re.compile(r"[\u3041-\u309f\u30a0-\u30ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
]
_UKRAINIAN = re.compile(r"[іїєґ]")
_LATIN_WORD = re.compile(r"[a-z]+")


def primary_subtag(tag: str | None) -> str | None:
    """``en-GB`` -> ``en``; empty -> None."""
    if not tag:
        return None
    return tag.strip().lower().replace("_", "-").split("-")[0] or None


def detect_language(folded: str) -> str | None:
    """Guess the language of folded text (see ``monitor.text.fold``), or None when unsure."""
    sample = folded[:SAMPLE_CHARS]
    counts = {lang: len(pattern.findall(sample)) for lang, pattern in _SCRIPTS}
    letters = len(_LATIN_WORD.findall(sample))
    lang, count = max(counts.items(), key=lambda item: item[1])
    if count and (lang in ("ja", "zh") and counts["ja"]):
        lang = "ja"  # Japanese mixes kana with Han; Chinese has no kana
    if count >= 5 and count >= letters:
        if lang == "ru" and _UKRAINIAN.search(sample):
            return "uk"
        return lang
    scores = dict.fromkeys(_STOPWORDS, 0)
    for word in _LATIN_WORD.findall(sample):
        for language, stopwords in _STOPWORDS.items():
            if word in stopwords:
                scores[language] += 1
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    if top >= 2 and top > second * 1.2:
        return best
    return None
