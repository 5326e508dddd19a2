"""Request ids: the client's (body or ``x-request-id``) or generated; checked either way."""

from __future__ import annotations

from loopml.errors import InputError

MAX_REQUEST_ID = 128


def check_request_id(value: object) -> str:
    """``value`` if it is a request id the server can echo in a header; else InputError."""
    if not isinstance(value, str) or not value or len(value) > MAX_REQUEST_ID:
        raise InputError(
            f"a request id must be a non-empty string of at most {MAX_REQUEST_ID} characters",
            error="bad_request_id",
            field="request_id",
        )
    if not (value.isascii() and value.isprintable()):
        raise InputError(
            "a request id must be printable ASCII (space to '~'): it comes back in the "
            "x-request-id header; drop control and non-ASCII characters from it",
            error="bad_request_id",
            field="request_id",
        )
    return value
