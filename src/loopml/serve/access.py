"""Who may call which route: the bearer-token scopes of one server (DESIGN.md 10, 14).

Labels are training data for the next model, so ``/feedback`` needs a token of the
*feedback* scope unless ``serve.feedback_auth: none``; predictions need one of the
*predict* scope only with ``serve.predict_auth: token``. The admin token is accepted
wherever another scope is asked for. A refusal is the usual Problem body: 401 without a
token (the reason names the file that holds it), 403 with a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from loopml.errors import InputError
from loopml.tokens import matching_scope

__all__ = ["ANONYMOUS", "Access", "Grant"]

ANONYMOUS = "anonymous"
"""The scope recorded for a label sent where no token is asked for."""


@dataclass(frozen=True, slots=True)
class Grant:
    """A request let through: by which scope (``admin``, ``feedback``, ``predict`` or
    ``anonymous``) and from which client address."""

    scope: str
    client: str | None


@dataclass(frozen=True)
class Access:
    """The tokens of one server and the routes that ask for them.

    ``feedback`` / ``predict`` are None when that route asks for no token;
    ``*_file`` are the files that hold them, named in the 401's reason.
    """

    admin: str
    feedback: str | None = None
    predict: str | None = None
    feedback_file: str = ".loopml/feedback.token"
    predict_file: str = ".loopml/predict.token"

    def feedback_grant(self, request: Request) -> Grant:
        """The grant of a ``/feedback`` request; raises the 401 / 403 to answer (counted
        per route as ``unauthorized`` / ``forbidden`` like every refusal)."""
        return self._grant(request, "feedback", self.feedback, self.feedback_file)

    def predict_grant(self, request: Request) -> Grant:
        """The grant of a prediction request; raises the 401 / 403 to answer."""
        return self._grant(request, "predict", self.predict, self.predict_file)

    def _grant(self, request: Request, scope: str, token: str | None, file: str) -> Grant:
        client = request.client.host if request.client is not None else None
        if token is None:
            return Grant(ANONYMOUS, client)
        header = request.headers.get("authorization")
        found = matching_scope(header, {scope: token, "admin": self.admin})
        if found is not None:
            return Grant(found, client)
        if header is None:
            refusal = InputError(
                f"{request.url.path} needs 'Authorization: Bearer <token>' with the {scope} "
                f"token (in the file {file} of the server's project, set by "
                f"serve.{scope}_token_file) or the admin token",
                error="unauthorized",
                status=401,
            )
            refusal.headers = {"WWW-Authenticate": "Bearer"}
            raise refusal
        raise InputError(
            f"the bearer token is neither the {scope} token ({file}) nor the admin token",
            error="forbidden",
            status=403,
        )
