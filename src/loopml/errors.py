"""The loopml error hierarchy.

Every error a user can cause carries three things, built from data rather than prose:
a one-line ``headline`` (what failed), a ``detail`` (where: file, column, rows, key) and
a ``fix`` (what to do about it). One mapping turns them into CLI output and exit codes
(:mod:`loopml.cli.output`), one into HTTP answers (:mod:`loopml.serve.app`): each error
carries its ``status``, a stable ``error`` code, the ``reason`` a client is told, and
whether a client should retry (the server then adds ``Retry-After``). An error whose
status stays 500 is a failure of the server itself: the client gets a generic answer and
the log gets the traceback.

Exit codes follow ``loopml validate``: 1 means "the input was read but is not acceptable"
(violations, a failed gate), 2 means "the input could not be used at all" (missing or
unreadable file, bad project file, unreachable store).
"""

from __future__ import annotations

EXIT_VIOLATIONS = 1
EXIT_UNUSABLE = 2


class LoopmlError(Exception):
    """Base class: a failure the user can act on."""

    exit_code: int = EXIT_UNUSABLE
    status: int = 500
    error: str = "internal"
    client_reason: str = ""
    """What a client is told, when not the headline (which may name server internals)."""
    retryable: bool = False
    logged: bool = False
    """Whether the server logs each time it answers with this error."""
    field: str | None = None
    row: int | None = None
    headers: dict[str, str] | None = None
    """HTTP headers of the answer (e.g. ``WWW-Authenticate`` on a 401)."""

    def __init__(self, headline: str, *, detail: str = "", fix: str = "") -> None:
        super().__init__(headline)
        self.headline = headline
        self.detail = detail
        self.fix = fix
        self.reason = self.client_reason or headline

    def __str__(self) -> str:
        parts = [self.headline]
        if self.detail:
            parts.append(self.detail)
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, str]:
        return {
            "error": type(self).__name__,
            "headline": self.headline,
            "detail": self.detail,
            "fix": self.fix,
        }

    def to_body(self) -> dict[str, object]:
        """The JSON body of the HTTP answer: ``{error, field, row, reason}``."""
        return {"error": self.error, "field": self.field, "row": self.row, "reason": self.reason}


class ConfigError(LoopmlError):
    """The project file is missing, malformed, or holds an unknown key or a bad value."""


class DataError(LoopmlError):
    """A table could not be read: missing, empty, not UTF-8, not parseable, bad query."""


class ContractError(LoopmlError):
    """A table was read but breaks its data contract, or cannot be trained on."""

    exit_code = EXIT_VIOLATIONS


class TrainingError(LoopmlError):
    """Training could not produce a model (e.g. a target with a single class)."""


class TrackingError(LoopmlError):
    """The MLflow tracking store or model registry could not be reached or used."""


class RegistryError(LoopmlError):
    """A model version or alias does not exist or cannot be moved."""


class GateFailed(LoopmlError):
    """A model did not earn what was asked of it (registration or promotion)."""

    exit_code = EXIT_VIOLATIONS


class InputError(LoopmlError):
    """A request (or one row of a batch) that does not fit the served model's contract.

    The server answers it with ``status`` and ``{error, field, row, reason}``; batch scoring
    writes it beside the rejected row. ``error`` is a stable machine-readable code such as
    ``missing_field``, ``wrong_type``, ``non_finite`` (errors of :mod:`loopml.data.severity`),
    ``malformed_json``, ``too_many_rows``, ``empty``, ``unsupported_media_type`` (415) or
    ``body_too_large`` (413); ``reason`` says what is wrong and how to fix it.
    """

    exit_code = EXIT_VIOLATIONS

    def __init__(
        self,
        reason: str,
        *,
        error: str = "invalid_input",
        field: str | None = None,
        row: int | None = None,
        status: int = 422,
    ) -> None:
        where = ", ".join(
            part
            for part in (
                f"field {field!r}" if field else "",
                f"row {row}" if row is not None else "",
            )
            if part
        )
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.error = error
        self.field = field
        self.row = row
        self.status = status


class RolloutError(LoopmlError):
    """A rollout action cannot be done now (none running, one already running, a wrong
    version), or the loop-state database cannot be reached."""

    status = 409
    error = "rollout"
