"""Articles, flows and text blocks as the console picks them (the admin CRUD is in the REST layer)."""

from __future__ import annotations

import unicodedata

from signaling.domain.models import Article
from signaling.storage.base import Store


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


class CatalogService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def search_articles(self, q: str, language: str | None = None, limit: int = 20) -> list[Article]:
        """Articles whose title, summary or body contain every word of ``q`` (accent-insensitive);
        title matches first, then the preferred language."""
        words = _fold(q).split()
        scored: list[tuple[int, int, str, Article]] = []
        for article in await self.store.list_articles():
            title, rest = _fold(article.title), _fold(article.summary + " " + article.body)
            if not all(w in title or w in rest for w in words):
                continue
            title_hits = sum(1 for w in words if w in title)
            scored.append((-title_hits, 0 if article.language == language else 1, article.title, article))
        scored.sort(key=lambda row: row[:3])
        return [row[3] for row in scored[:limit]]
