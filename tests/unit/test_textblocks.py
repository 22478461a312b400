"""Pins the text-block picker: ranking tiers (exact shortcut > shortcut prefix > title word prefix >
title substring > body substring > fuzzy), accent/case folding, typo tolerance, language preference,
deterministic order, and variable filling that leaves unknown placeholders visible."""

from __future__ import annotations

from signaling.domain.models import TextBlock
from signaling.domain.textblocks import fill, normalize, search


def tb(id: str, shortcut: str, title: str = "", body: str = "", language: str = "en") -> TextBlock:
    return TextBlock(id=id, shortcut=shortcut, title=title, body=body, language=language)


def ids(blocks: list[TextBlock]) -> list[str]:
    return [b.id for b in blocks]


def test_tiers_rank_in_order() -> None:
    """One block per tier for the query "ref": each tier outranks the next, non-matches are dropped."""
    blocks = [
        tb("fuzzy", "zz1", "Diving", "A trip to the reef"),  # "ref" is a subsequence of "reef"
        tb("body", "zz2", "Returns", "Our refund policy is simple"),
        tb("title-sub", "zz3", "Preference centre", "Change settings"),
        tb("title-word", "zz4", "How to get a refund", "Ask us"),
        tb("prefix", "refund", "Refunds", "..."),
        tb("exact", "ref", "Reference number", "..."),
        tb("none", "hello", "Greeting", "Hi there"),
    ]
    assert ids(search(blocks, "ref")) == ["exact", "prefix", "title-word", "title-sub", "body", "fuzzy"]


def test_fuzzy_tier_is_last() -> None:
    """A subsequence or one-typo match is found, but below every literal match."""
    blocks = [
        tb("typo", "zz1", "Shipping times", "Delivery in 3 days"),
        tb("literal", "zz2", "Other", "About shiping costs"),  # body contains the misspelling literally
    ]
    assert ids(search(blocks, "shiping")) == ["literal", "typo"]


def test_fuzzy_transposition_and_subsequence() -> None:
    """A swapped pair (Damerau), a dropped letter and an abbreviation (subsequence) all match."""
    blocks = [tb("b", "zz", "Refund policy", "Money back within 30 days")]
    assert ids(search(blocks, "rfeund")) == ["b"]
    assert ids(search(blocks, "refnd")) == ["b"]
    assert ids(search(blocks, "plcy")) == ["b"]
    assert ids(search(blocks, "refunds")) == ["b"]  # one insertion
    assert ids(search(blocks, "refn")) == ["b"]  # typo while still typing the word


def test_fuzzy_rejects_far_terms() -> None:
    """Two edits away, or a short term that is no substring, does not match."""
    blocks = [tb("b", "zz", "Refund policy", "Money back")]
    assert search(blocks, "rafnud") == []
    assert search(blocks, "qx") == []
    assert search(blocks, "xyzzy") == []


def test_multi_term_query_needs_every_term() -> None:
    """Terms may match different fields in any order; one unmatched term drops the block."""
    blocks = [
        tb("both", "zz1", "Policy on refunds", "For damaged goods"),
        tb("one", "zz2", "Refund times", "Five days"),
    ]
    assert ids(search(blocks, "refund damaged")) == ["both"]


def test_title_word_prefix_for_phrases() -> None:
    """A multi-word query that starts a run of title words is a title-word-prefix match."""
    blocks = [
        tb("sub", "zz1", "Xrefund policy", ""),
        tb("words", "zz2", "Our refund policy explained", ""),
    ]
    assert ids(search(blocks, "refund pol")) == ["words", "sub"]


def test_case_and_accent_insensitive() -> None:
    """Queries and blocks are compared without case or accents, both ways."""
    blocks = [tb("fr", "merci", "Réponse délicate", "Ça arrive à tout le monde", language="fr")]
    assert ids(search(blocks, "REPONSE")) == ["fr"]
    assert ids(search(blocks, "réPonse")) == ["fr"]
    assert ids(search(blocks, "ca arrive")) == ["fr"]
    assert ids(search(blocks, "MERCI")) == ["fr"]
    assert normalize("  Éte\u0301  ÉTÉ ") == "ete ete"


def test_leading_hash_is_ignored() -> None:
    """The picker's trigger character does not need to be in the shortcut."""
    blocks = [tb("a", "thanks", "Thank you"), tb("b", "#hello", "Hello")]
    assert ids(search(blocks, "#thanks")) == ["a"]
    assert ids(search(blocks, "hello")) == ["b"]
    assert ids(search(blocks, "#hel")) == ["b"]


def test_language_preference_at_equal_score() -> None:
    """At the same tier the preferred language (then its primary subtag) comes first; a better tier
    in another language still wins."""
    blocks = [
        tb("en", "greet", "Greeting", language="en"),
        tb("de", "greet2", "Greeting", language="de"),
        tb("fr-ca", "greet3", "Greeting", language="fr-CA"),
        tb("fr", "greet4", "Greeting", language="fr"),
    ]
    assert ids(search(blocks, "greet", language="fr")) == ["en", "fr", "fr-ca", "de"]
    assert ids(search(blocks, "gree", language="fr")) == ["fr", "fr-ca", "en", "de"]
    assert ids(search(blocks, "gree", language="FR_ca")) == ["fr-ca", "fr", "en", "de"]
    assert ids(search(blocks, "gree")) == ["en", "de", "fr-ca", "fr"]


def test_empty_query_lists_preferred_language_then_shortcut() -> None:
    """An empty (or blank, or "#") query returns the first `limit` blocks: language first, by shortcut."""
    blocks = [
        tb("1", "zeta", language="en"),
        tb("2", "alpha", language="en"),
        tb("3", "beta", language="de"),
        tb("4", "gamma", language="de"),
    ]
    assert ids(search(blocks, "", language="de")) == ["3", "4", "2", "1"]
    assert ids(search(blocks, "  ", language="de", limit=3)) == ["3", "4", "2"]
    assert ids(search(blocks, "#")) == ["2", "3", "4", "1"]


def test_limit_and_determinism() -> None:
    """At most `limit` results; the order does not depend on the input order (ties break by shortcut, id)."""
    blocks = [tb(f"id{i}", f"sc{i % 3}", "Same title") for i in range(9)]
    first = ids(search(blocks, "same", limit=4))
    assert first == ids(search(list(reversed(blocks)), "same", limit=4))
    assert first == ["id0", "id3", "id6", "id1"]
    assert search(blocks, "same", limit=0) == []
    assert len(search(blocks, "same", limit=100)) == 9


def test_fill_replaces_known_variables_with_spaces() -> None:
    """{{name}} and {{ name }} with any inner spacing are replaced by dotted-name lookups."""
    body = "Hi {{customer.name}}, I am {{ agent.name }}. Mail: {{   customer.email\t}}."
    out = fill(body, {"customer.name": "Zoë", "agent.name": "Sam", "customer.email": "z@x.io"})
    assert out == "Hi Zoë, I am Sam. Mail: z@x.io."


def test_fill_leaves_unknown_variables_as_written() -> None:
    """Unknown placeholders stay verbatim so the agent sees them; stray braces are untouched."""
    body = "Dear {{ customer.title }} {{customer.name}}, {not a var} {{}} {{ bad name }}"
    assert (
        fill(body, {"customer.name": "Ann"})
        == "Dear {{ customer.title }} Ann, {not a var} {{}} {{ bad name }}"
    )


def test_fill_is_single_pass_and_literal() -> None:
    """A value that looks like a placeholder or has regex escapes or HTML is inserted as-is."""
    variables = {"customer.name": "{{agent.name}} \\1 <b>", "agent.name": "Sam"}
    assert fill("{{customer.name}}|{{agent.name}}", variables) == "{{agent.name}} \\1 <b>|Sam"


def test_fill_case_insensitive_fallback() -> None:
    """An exact key wins; otherwise the name is matched ignoring case."""
    assert fill("{{Customer.Name}}", {"customer.name": "Ann"}) == "Ann"
    assert fill("{{X}}", {"X": "exact", "x": "lower"}) == "exact"
