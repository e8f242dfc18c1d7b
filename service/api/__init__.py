"""The HTTP and websocket API (FastAPI): one router per resource under api/routes/."""

from service.api.app import create_app

__all__ = ["create_app"]
