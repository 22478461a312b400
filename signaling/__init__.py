"""The signalling hub and the business: domain, services, storage ports and the Socket.IO hub.

Dependency rule: ``hub -> services -> domain``; ``storage`` implements the ports that
``signaling.storage.base`` declares. Nothing here imports ``rtc_server``, aiortc or aiohttp's web app.
"""
