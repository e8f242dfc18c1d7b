"""Python client for the emotion-perception service: `EmotionClient` for the REST API and the live event stream,
and `python -m client` on the command line. Needs only httpx and websockets, not the service's code."""

from client.emotion_client import (DEFAULT_URL, EVENT_TYPES, ClientError, ClipFileError, EmotionClient,
                                   EmotionClientError, RequestTimeout, ServiceUnreachable)

__all__ = ["DEFAULT_URL", "EVENT_TYPES", "ClientError", "ClipFileError", "EmotionClient", "EmotionClientError",
           "RequestTimeout", "ServiceUnreachable"]
