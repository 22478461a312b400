"""Logins, visitor identities and the tokens both carry."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from signaling.domain import auth as tokens
from signaling.domain.errors import Forbidden, Invalid, Unauthorized
from signaling.domain.models import Agent, Visitor, new_id
from signaling.services.principal import Principal
from signaling.storage.base import Store


@dataclass(frozen=True, slots=True)
class AuthSettings:
    secret: bytes
    agent_token_ttl_s: int = 12 * 3600
    visitor_token_ttl_s: int = 7 * 24 * 3600


class AuthService:
    """Issues and checks the signed tokens of agents and visitors."""

    def __init__(self, store: Store, settings: AuthSettings) -> None:
        self._store = store
        self._settings = settings

    async def login(self, email: str, password: str) -> tuple[str, Agent]:
        """``Unauthorized`` for an unknown email or a wrong password (one message for both)."""
        agent = await self._store.get_agent_by_email(email.strip())
        if agent is None or not tokens.verify_password(password, agent.password_hash):
            raise Unauthorized("wrong email or password")
        return self.agent_token(agent), agent

    def agent_token(self, agent: Agent) -> str:
        claims = {"k": "agent", "sub": agent.id, "v": agent.token_version}
        return tokens.sign_token(self._settings.secret, claims, self._settings.agent_token_ttl_s, time.time())

    def visitor_token(self, visitor: Visitor) -> str:
        claims = {"k": "customer", "sub": visitor.id}
        return tokens.sign_token(
            self._settings.secret, claims, self._settings.visitor_token_ttl_s, time.time()
        )

    async def create_visitor(
        self,
        *,
        name: str = "",
        email: str = "",
        user_id: str = "",
        user_hash: str = "",
        locale: str = "",
    ) -> tuple[Visitor, str]:
        """A new visitor and its token. With ``user_id``, ``user_hash`` must be
        HMAC-SHA256(secret, user_id) in hex (``Forbidden`` otherwise)."""
        verified = False
        if user_id:
            if not user_hash:
                raise Invalid("user_hash is required with user_id", field="user_hash")
            if not tokens.verify_user_hash(self._settings.secret, user_id, user_hash):
                raise Forbidden("user_hash does not match user_id")
            verified = True
        elif user_hash:
            raise Invalid("user_hash given without user_id", field="user_id")
        visitor = Visitor(
            id=new_id("vs"),
            name=name.strip()[:120],
            email=email.strip()[:254],
            user_id=user_id[:200],
            verified=verified,
            locale=locale[:16],
        )
        await self._store.create_visitor(visitor)
        return visitor, self.visitor_token(visitor)

    async def authenticate(
        self, token: Any, expected_kind: str | None = None, *, allow_guest: bool = False
    ) -> Principal:
        """The principal a token names; ``Unauthorized`` when it is missing, forged, expired, revoked
        (an agent's password changed since) or of the other kind. With ``allow_guest``, a conference
        guest token (``signaling.services.conference``) gives a ``guest`` principal instead."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("a token is required")
        claims = tokens.verify_token(self._settings.secret, token, time.time())
        kind = claims.get("k")
        sub = claims.get("sub")
        if allow_guest and kind == "guest":
            request_id, name = claims.get("r"), claims.get("n")
            if not isinstance(sub, str) or not isinstance(request_id, str) or not isinstance(name, str):
                raise Unauthorized("malformed token")
            return Principal(kind="guest", visitor=Visitor(id=sub, name=name), guest_request_id=request_id)
        if not isinstance(sub, str) or kind not in ("agent", "customer"):
            raise Unauthorized("malformed token")
        if expected_kind is not None and kind != expected_kind:
            raise Unauthorized(f"this token is not an {expected_kind} token" if expected_kind == "agent"
                               else f"this token is not a {expected_kind} token")
        if kind == "agent":
            agent = await self._store.get_agent(sub)
            if agent is None or claims.get("v") != agent.token_version:
                raise Unauthorized("this session has been revoked; log in again")
            return Principal(kind="agent", agent=agent)
        visitor = await self._store.get_visitor(sub)
        if visitor is None:
            raise Unauthorized("unknown visitor")
        return Principal(kind="customer", visitor=visitor)

    async def change_password(self, agent: Agent, new_password: str) -> tuple[str, Agent]:
        """Set a new password and revoke every token issued before; returns a fresh token."""
        if len(new_password) < 4:
            raise Invalid("password too short", field="password")
        agent.password_hash = tokens.hash_password(new_password)
        agent.token_version += 1
        agent = await self._store.update_agent(agent)
        return self.agent_token(agent), agent
