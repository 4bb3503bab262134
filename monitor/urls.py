"""Canonical URLs (a leaf: imports nothing of ours).

A link is made absolute, its scheme and host lower-cased, its fragment and tracking parameters
dropped, so that the same story linked from two feeds (or twice with different campaign tags) is
the same URL. Parse uses it for ``Article.url``; dedupe relies on it for identity. A guid that is
a URL keeps its fragment (``guid_url``): there the fragment may be all that names the item.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
        "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "ocid", "cmpid", "ncid", "rss",
        "ref_src", "s_cid", "spm", "ito", "at_medium", "at_campaign",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "__twitter", "oly_")


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(link: str, base: str | None = None, *, keep_fragment: bool = False) -> str | None:
    """The absolute canonical form of ``link`` resolved against ``base``; None if unusable.

    ``keep_fragment`` is for a guid that is a URL: a live blog names its updates
    ``.../live#u1``, ``.../live#u2``, and there the fragment is what tells them apart.
    """
    link = link.strip()
    if not link:
        return None
    try:  # both raise ValueError on a malformed host ("http://[x", found by atheris)
        if base and not link.startswith(("http://", "https://")):
            link = urljoin(base, link)
        parts = urlsplit(link)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return None
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = parts.query and _without_tracking(parts.query)
    fragment = parts.fragment if keep_fragment else ""
    return urlunsplit((scheme, host, parts.path or "/", query, fragment))


def _without_tracking(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not is_tracking_param(k)]
    return query if len(kept) == len(pairs) else urlencode(kept)


def guid_url(guid: str) -> str | None:
    """The canonical form of a guid that is an http(s) URL, fragment kept; None for other guids.

    Feeds write URL guids for items of their own, and a fragment may be all that separates two
    of them (``.../live#u1``, ``.../live#u2``): dropped, the second would be "seen" already.
    """
    if not guid.startswith(("http://", "https://")):
        return None
    return canonical_url(guid, keep_fragment=True)
