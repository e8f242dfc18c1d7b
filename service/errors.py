"""Errors the service reports to a person as one clear line (the CLI prints them; the API turns them into 4xx)."""


class ServiceError(Exception):
    """Base class: the message is the whole story, no traceback needed."""


class BundleError(ServiceError):
    """A model bundle is missing, malformed or inconsistent."""


class ClipError(ServiceError):
    """A clip cannot be read: missing, empty, corrupt, or not a video."""


class DetectorError(ServiceError):
    """A face detector cannot be built (e.g. a configured model file does not exist)."""


class SourceError(ServiceError):
    """A live source is misnamed or cannot be opened."""


class UploadError(ServiceError):
    """An uploaded clip is refused (too large, empty, not a video)."""


class ClipCancelled(ServiceError):
    """The analysis of a clip was stopped on request (its uploader went away, or the service is stopping)."""
