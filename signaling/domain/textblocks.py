"""Text-block search (the ``#`` picker of the input field) and variable filling.

:func:`search` ranks blocks by how well the query matches, best tier first:

1. exact shortcut,
2. shortcut prefix,
3. a title word starting with the query,
4. the query inside the title,
5. the query inside the body,
6. fuzzy: every query term matches some word of the shortcut, title or body as a substring, as a
   subsequence (terms of 3+ characters, same first letter), or within one edit (Damerau-Levenshtein,
   terms of 4+ characters, against the word or its prefixes about as long as the term).

Matching ignores case and accents (NFKD, combining marks dropped, casefolded). At equal tier, blocks
in the preferred language come first, then by shortcut and id, so the order is deterministic.

:func:`fill` replaces ``{{ dotted.name }}`` placeholders from a flat mapping and leaves unknown ones as
written, so the agent sees what is missing before sending. An anonymous customer (no name) is called
"Visitor" and the last four characters of their id, in the text's language, as the console shows them
(when the mapping carries ``customer.id``); otherwise an empty value is dropped with the space or comma
that only existed for it ("Hello {{customer.name}}, I am Sam" -> "Hello, I am Sam", never "Hello , I am").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from signaling.domain.models import TextBlock

TIER_EXACT_SHORTCUT = 6
TIER_SHORTCUT_PREFIX = 5
TIER_TITLE_WORD_PREFIX = 4
TIER_TITLE_SUBSTRING = 3
TIER_BODY_SUBSTRING = 2
TIER_FUZZY = 1

_WORD = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*\}\}")

_MIN_SUBSEQUENCE = 3
_MIN_EDIT = 4


def normalize(text: str) -> str:
    """Case- and accent-insensitive form of ``text``, with runs of whitespace collapsed to one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.casefold()).strip()


@dataclass(frozen=True, slots=True)
class _Prepared:
    block: TextBlock
    shortcut: str
    title: str
    title_words: tuple[str, ...]
    body: str
    words: tuple[str, ...]
    """Every word of shortcut, title and body, deduplicated, in first-seen order."""


def _prepare(block: TextBlock) -> _Prepared:
    shortcut = normalize(block.shortcut).lstrip("#")
    title = normalize(block.title)
    body = normalize(block.body)
    title_words = tuple(_WORD.findall(title))
    words = tuple(dict.fromkeys([*_WORD.findall(shortcut), *title_words, *_WORD.findall(body)]))
    return _Prepared(block, shortcut, title, title_words, body, words)


def search(
    blocks: Sequence[TextBlock], q: str, *, language: str | None = None, limit: int = 10
) -> list[TextBlock]:
    """The blocks matching ``q``, best first, at most ``limit`` of them.

    A leading ``#`` in ``q`` (the picker's trigger) is ignored. An empty query returns the first
    ``limit`` blocks, preferred language first, then by shortcut. See the module docstring for the
    ranking.
    """
    if limit <= 0:
        return []
    nq = normalize(q).lstrip("#").strip()
    prepared = [_prepare(b) for b in blocks]
    if not nq:
        prepared.sort(key=lambda p: (_language_rank(p.block.language, language), p.shortcut, p.block.id))
        return [p.block for p in prepared[:limit]]
    terms = tuple(_WORD.findall(nq))
    scored: list[tuple[int, int, int, str, str, TextBlock]] = []
    for p in prepared:
        tier, cost = _score(p, nq, terms)
        if tier:
            lang = _language_rank(p.block.language, language)
            scored.append((-tier, cost, lang, p.shortcut, p.block.id, p.block))
    scored.sort(key=lambda s: s[:5])
    return [s[5] for s in scored[:limit]]


def _score(p: _Prepared, nq: str, terms: tuple[str, ...]) -> tuple[int, int]:
    """``(tier, cost)``: tier 0 means no match; cost orders fuzzy matches (fewer fuzzy terms first)."""
    if p.shortcut == nq:
        return TIER_EXACT_SHORTCUT, 0
    if p.shortcut.startswith(nq):
        return TIER_SHORTCUT_PREFIX, 0
    if terms and _starts_a_word_run(p.title_words, terms):
        return TIER_TITLE_WORD_PREFIX, 0
    if nq in p.title:
        return TIER_TITLE_SUBSTRING, 0
    if nq in p.body:
        return TIER_BODY_SUBSTRING, 0
    if not terms:
        return 0, 0
    cost = 0
    for term in terms:
        term_cost = _term_cost(term, p.words)
        if term_cost is None:
            return 0, 0
        cost += term_cost
    return TIER_FUZZY, cost


def _starts_a_word_run(words: tuple[str, ...], terms: tuple[str, ...]) -> bool:
    """Whether the terms match consecutive words, all but the last exactly and the last as a prefix."""
    n = len(terms)
    for i in range(len(words) - n + 1):
        if words[i : i + n - 1] == terms[:-1] and words[i + n - 1].startswith(terms[-1]):
            return True
    return False


def _term_cost(term: str, words: tuple[str, ...]) -> int | None:
    """0 when ``term`` is inside some word, 1 when it matches one fuzzily, None when it matches none."""
    if any(term in w for w in words):
        return 0
    for w in words:
        if len(term) >= _MIN_SUBSEQUENCE and w[:1] == term[:1] and _is_subsequence(term, w):
            return 1
        if len(term) >= _MIN_EDIT and any(_within_one_edit(term, pre) for pre in _edit_targets(term, w)):
            return 1
    return None


def _edit_targets(term: str, word: str) -> list[str]:
    """The word itself and, for a longer word, its prefixes about as long as ``term`` (a typo while
    the word is still being typed)."""
    targets = [word]
    for n in (len(term) - 1, len(term), len(term) + 1):
        if 0 < n < len(word):
            targets.append(word[:n])
    return targets


def _is_subsequence(needle: str, hay: str) -> bool:
    it = iter(hay)
    return all(ch in it for ch in needle)


def _within_one_edit(a: str, b: str) -> bool:
    """Optimal-string-alignment (restricted Damerau-Levenshtein) distance of ``a`` and ``b`` is <= 1."""
    if abs(len(a) - len(b)) > 1:
        return False
    if a == b:
        return True
    return _osa_distance(a, b) <= 1


def _osa_distance(a: str, b: str) -> int:
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            sub = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + sub)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def _language_rank(block_language: str, preferred: str | None) -> int:
    """0: the preferred language; 1: same primary subtag (``fr`` for ``fr-CA``); 2: any other."""
    if not preferred:
        return 0
    have = block_language.casefold().replace("_", "-")
    want = preferred.casefold().replace("_", "-")
    if have == want:
        return 0
    if have.split("-", 1)[0] == want.split("-", 1)[0]:
        return 1
    return 2


#: "Visitor" in the languages of the pages (``visitor.anonymous`` in ``web/src/shared/locales``).
ANONYMOUS_VISITOR = {"en": "Visitor", "fr": "Visiteur"}
_GONE = "\x00"  # where an empty value was, while the text around it is tidied
_GONE_AT_LINE_START = re.compile(r"^[ \t]*\x00[ \t]*[,;:.!?]?[ \t]*(.?)", re.MULTILINE)
_GONE_BEFORE_PUNCTUATION = re.compile(r",?[ \t]*\x00(?=[ \t]*(?:[.,;:!?\u2026)\]]|$))", re.MULTILINE)
_GONE_ELSEWHERE = re.compile(r"[ \t]*\x00")


def anonymous_name(visitor_id: str, language: str | None = None) -> str:
    """What an anonymous customer is called: "Visitor 1a2b" (the id's last four characters), in
    ``language`` when known (``fr``, ``fr-CA``, ...), else in English."""
    primary = (language or "en").split("-")[0].split("_")[0].lower()
    return f"{ANONYMOUS_VISITOR.get(primary, ANONYMOUS_VISITOR['en'])} {visitor_id[-4:]}"


def fill(body: str, variables: Mapping[str, str], language: str | None = None) -> str:
    """``body`` with each ``{{ name }}`` placeholder replaced by ``variables[name]``.

    Names are dotted (``customer.name``, ``agent.name``, ...); spaces inside the braces are tolerated
    and a name is looked up exactly, then case-insensitively. Unknown placeholders stay as written.
    Values are inserted verbatim and never expanded again (a customer named ``{{agent.name}}`` stays
    literal); no HTML escaping happens here, clients render text as text.

    An empty ``customer.name`` becomes :func:`anonymous_name` of ``customer.id`` in ``language`` (the
    text block's or the conversation's) when the mapping has that id. Any other empty value is dropped
    together with the space before it, and a comma before it when sentence punctuation follows
    ("Thank you, {{customer.name}}." -> "Thank you."); at the start of a line, with the punctuation after
    it, and the next letter is capitalised ("{{customer.name}}, welcome!" -> "Welcome!").
    """
    values = dict(variables)
    name, visitor_id = values.get("customer.name", ""), values.get("customer.id", "")
    if not str(name).strip() and visitor_id:
        values["customer.name"] = anonymous_name(str(visitor_id), language)
    folded = {k.casefold(): v for k, v in values.items()}

    def lookup(match: re.Match[str]) -> str | None:
        name = match.group(1)
        value = values[name] if name in values else folded.get(name.casefold())
        return None if value is None else str(value)

    # Drop the empty values in the template first (the agent's words, never the values), then fill.
    template = _PLACEHOLDER.sub(
        lambda m: _GONE if (v := lookup(m)) is not None and not v.strip() else m.group(0),
        body.replace(_GONE, ""),
    )
    if _GONE in template:
        template = _GONE_AT_LINE_START.sub(lambda m: m.group(1).upper(), template)
        template = _GONE_BEFORE_PUNCTUATION.sub("", template)
        template = _GONE_ELSEWHERE.sub("", template)

    def replace(match: re.Match[str]) -> str:
        value = lookup(match)
        return match.group(0) if value is None else value

    return _PLACEHOLDER.sub(replace, template)
