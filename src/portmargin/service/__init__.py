"""The margin service: ``portmargin serve`` (REST API, WebSocket stream, risk dashboard).

:func:`create_app` builds the ASGI application from :class:`ServiceSettings`; see
``docs/service.md``.
"""

from portmargin.service._app import create_app
from portmargin.service._settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
