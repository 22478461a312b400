"""The message catalogue (``web/src/shared/locales/*.js``), read with Node: every language has the
keys English has and the same ``{placeholders}`` in each, and every literal key the pages look up
(``t("...")``, ``app.t("...")``, ``this.s("...")`` of the call UI, ``t("...")`` of the join page)
exists in English. Pins: adding a language is adding one complete file; no page shows a raw key.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.browser.conftest import WEB

LOCALES = WEB / "src" / "shared" / "locales"
#: Keys a language may add for its grammar (French participle agreement: ``kind.<kind>.e``).
GRAMMAR = re.compile(r"^kind\.\w+\.e$")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


@pytest.fixture(scope="module")
def catalogues() -> dict[str, dict[str, str]]:
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    script = (
        "const fs = await import('node:fs'); const out = {};"
        f"for (const f of fs.readdirSync({json.dumps(str(LOCALES))})) {{"
        f"  if (f.endsWith('.js')) out[f.slice(0, -3)] = (await import({json.dumps(str(LOCALES))} + '/' + f)).default; }}"
        "console.log(JSON.stringify(out));"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, check=True, timeout=30
    )
    return json.loads(done.stdout)


def test_every_language_has_every_key_with_the_same_placeholders(
    catalogues: dict[str, dict[str, str]],
) -> None:
    """Each locale file covers English's keys (plus grammar-only ones) with the same placeholders."""
    en = catalogues["en"]
    assert {"en", "fr"} <= set(catalogues)
    for lang, table in catalogues.items():
        missing = sorted(set(en) - set(table))
        extra = sorted(k for k in set(table) - set(en) if not GRAMMAR.match(k))
        assert not missing and not extra, (lang, missing, extra)
        for key, text in table.items():
            if key in en:
                # "{e}" is French agreement, filled for every system message
                got = set(PLACEHOLDER.findall(text)) - {"e"}
                assert got == set(PLACEHOLDER.findall(en[key])), (lang, key, text)
        assert table["language.name"] and table["language.name"] != "English" or lang == "en"


def test_every_key_the_pages_look_up_exists(catalogues: dict[str, dict[str, str]]) -> None:
    """Literal keys in the sources (``t("x")``, ``.t("x")``, ``s("x")`` -> ``call.x``, join page ``t("x")``
    -> ``join.x``, ``t.plural("x", n)`` -> ``x.one``/``x.other``) are all in the English catalogue."""
    en = catalogues["en"]
    wanted: set[str] = set()
    for path in (WEB / "src").rglob("*.js"):
        if "locales" in path.parts:
            continue
        code = path.read_text(encoding="utf-8")
        if path.parent.name == "join":
            wanted |= {"join." + k for k in re.findall(r"\bt\(\"([a-z_]+)\"", code)}
            continue
        wanted |= set(re.findall(r"\bt\(\"([a-z][\w.]*)\"", code))
        wanted |= {"call." + k for k in re.findall(r"\bs\(\"([a-z_]+)\"", code)}
        for key in re.findall(r"\bt\.plural\(\"([a-z][\w.]*)\"", code):
            wanted |= {key + ".one", key + ".other"}
    # a key ending in "." is a prefix completed at run time ("kind." + kind): checked by the tests that show it
    missing = sorted(k for k in wanted if k not in en and not k.endswith("."))
    assert not missing, missing
