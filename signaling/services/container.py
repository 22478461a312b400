"""Every service, wired once by the composition root (``rtc_server.app``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from signaling.services.auth import AuthService, AuthSettings
from signaling.services.catalog import CatalogService
from signaling.services.conference import ConferenceService, ConferenceSettings
from signaling.services.conversations import ChatSettings, ConversationService
from signaling.services.fanout import Fanout
from signaling.services.inbox import InboxService
from signaling.services.messages import MessageService
from signaling.services.metrics import HubMetrics
from signaling.services.ports import MediaGateway
from signaling.services.presence import PresenceService
from signaling.services.requests import RequestService, RequestSettings
from signaling.services.timeline import Timeline
from signaling.storage.base import Store


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    auth: AuthSettings
    chat: ChatSettings = field(default_factory=ChatSettings)
    requests: RequestSettings = field(default_factory=RequestSettings)
    node_id: str = "local"
    allowed_origins: tuple[str, ...] = ()


class Services:
    def __init__(self, store: Store, fanout: Fanout, media: MediaGateway, settings: ServiceSettings) -> None:
        self.store = store
        self.fanout = fanout
        self.media = media
        self.settings = settings
        self.metrics = HubMetrics()
        self.timeline = Timeline(store, fanout)
        self.auth = AuthService(store, settings.auth)
        self.conversations = ConversationService(self.timeline, settings.chat)
        self.messages = MessageService(self.conversations)
        self.inbox = InboxService(self.timeline, settings.chat)
        self.requests = RequestService(self.timeline, media, settings.requests)
        self.presence = PresenceService(store, fanout, self.conversations, settings.node_id)
        self.catalog = CatalogService(store)
        self.conference = ConferenceService(
            self.timeline, media, ConferenceSettings(secret=settings.auth.secret)
        )
        self.conversations.on_done.append(self.requests.end_all)
        media.set_event_sink(self.requests.on_media_event)

    @property
    def message_max_chars(self) -> int:
        return self.settings.chat.message_max_chars

    def origin_allowed(self, origin: str | None) -> bool:
        allowed = self.settings.allowed_origins
        if not allowed or origin is None:
            return True
        return origin in allowed
