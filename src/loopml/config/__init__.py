"""The project file, ``loopml.yaml``: one typed settings object for every command.

It is built once at the entry point (:func:`load_project`) and passed down; nothing reads
the environment at import time. Environment variables override keys with the ``LOOPML_``
prefix and ``__`` between levels, e.g. ``LOOPML_TRACKING__URI=http://mlflow:5000``.

Every model forbids unknown keys, so a typo fails loudly with the key's path, what is
allowed there and the closest match. The ``monitor`` and ``rollout``
sections live in :mod:`loopml.config.monitor` and :mod:`loopml.config.rollout`; their
names are exported here too.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from loopml.config.base import STATE_DIR, Section
from loopml.config.monitor import (
    CUSUM_LIMIT,
    LABELLED_METRICS,
    AlertRule,
    DriftTestConfig,
    MonitorConfig,
    default_alerts,
)
from loopml.config.rollout import GuardLimit, RolloutConfig, RolloutGuards, Strategy
from loopml.errors import ConfigError

__all__ = [
    "CUSUM_LIMIT",
    "ENV_PREFIX",
    "LABELLED_METRICS",
    "PROJECT_FILE",
    "STATE_DIR",
    "AlertRule",
    "DataConfig",
    "DriftTestConfig",
    "GateConfig",
    "GuardLimit",
    "LedgerConfig",
    "MonitorConfig",
    "ProjectConfig",
    "RegistryConfig",
    "RolloutConfig",
    "RolloutGuards",
    "ServeConfig",
    "SourceConfig",
    "SplitConfig",
    "Strategy",
    "Task",
    "ThresholdConfig",
    "TrackingConfig",
    "TrainConfig",
    "TuningConfig",
    "apply_env_overrides",
    "default_alerts",
    "load_project",
    "parse_project",
]

PROJECT_FILE = "loopml.yaml"
ENV_PREFIX = "LOOPML_"
Task = Literal["binary", "multiclass", "regression"]


class SourceConfig(Section):
    """Where the training table comes from: a file, or a SQL query against a database."""

    path: str | None = Field(None, description="CSV or Parquet file, relative to the project")
    sql: str | None = Field(None, description="a SELECT query; needs `url`")
    url: str | None = Field(None, description="a SQLAlchemy URL, e.g. postgresql://...")

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        if (self.path is None) == (self.sql is None):
            raise ValueError("set exactly one of 'path' (a CSV/Parquet file) or 'sql' (a query)")
        if self.sql is not None and self.url is None:
            raise ValueError("'sql' needs 'url', a SQLAlchemy database URL")
        return self


class DataConfig(Section):
    source: SourceConfig
    target: str
    task: Task
    entity_key: str | None = None
    time_column: str | None = None
    positive_class: str | None = Field(
        None, description="binary only: the class to treat as positive (default: the last)"
    )
    contract: str = "loopml.contract.yaml"
    drop: tuple[str, ...] = Field((), description="columns never used as features")


class SplitConfig(Section):
    strategy: Literal["random", "time"] = "random"
    holdout: float = Field(0.2, gt=0.0, lt=0.9)
    seed: int = 42


class TuningConfig(Section):
    trials: int = Field(20, ge=1, description="Optuna trials per candidate")
    timeout_seconds: float = Field(90.0, gt=0, description="tuning time per candidate")
    max_rows: int = Field(200_000, ge=100, description="rows sampled for tuning")


class ThresholdConfig(Section):
    """How a binary model turns its positive-class probability into a label."""

    objective: Literal["f1", "accuracy", "balanced_accuracy", "cost", "fixed"] = Field(
        "f1",
        description="what the threshold maximises on validation rows (cost: minimises "
        "false_positive_cost x FP + false_negative_cost x FN; fixed: use 'value')",
    )
    value: float | None = Field(None, gt=0.0, lt=1.0, description="with objective 'fixed'")
    false_positive_cost: float = Field(1.0, gt=0.0, description="with objective 'cost'")
    false_negative_cost: float = Field(1.0, gt=0.0, description="with objective 'cost'")

    @model_validator(mode="after")
    def _value_when_fixed(self) -> ThresholdConfig:
        if (self.objective == "fixed") != (self.value is not None):
            raise ValueError("set 'value' (between 0 and 1) exactly when objective is 'fixed'")
        return self


class TrainConfig(Section):
    seed: int = 42
    baselines: tuple[str, ...] = Field(
        ("dummy",), min_length=1, description="the floor every model must beat (dummy)"
    )
    candidates: tuple[str, ...] = Field(
        ("linear", "lightgbm", "xgboost", "hist_gradient_boosting"),
        min_length=1,
        description="the models that compete; a more complex one must beat a simpler one",
    )
    tuning: TuningConfig = TuningConfig()
    class_weight: Literal["auto", "balanced", "none"] = Field(
        "auto", description="auto: balanced weights only when the rarest class is under 5%"
    )
    bootstrap: int = Field(200, ge=0, description="bootstrap resamples for confidence intervals")
    threshold: ThresholdConfig = ThresholdConfig()


class GateConfig(Section):
    metric: str | None = Field(None, description="default: roc_auc, f1_macro or rmse by task")
    margin: float = Field(
        0.005,
        ge=0.0,
        lt=1.0,
        description="how much better a model must be than the floor and than any simpler "
        "model: an absolute amount for bounded scores (AUC, F1, accuracy, R²), a fraction "
        "of the value beaten for error metrics (RMSE, MAE, log loss)",
    )
    slice_tolerance: float = Field(0.02, ge=0.0, description="allowed per-slice regression")
    min_slice_rows: int = Field(200, ge=1, description="smaller slices are not judged")


class TrackingConfig(Section):
    uri: str = f"sqlite:///{STATE_DIR}/mlflow.db"
    artifact_location: str = f"{STATE_DIR}/mlruns"
    experiment: str | None = None


class RegistryConfig(Section):
    audit_log: str = f"{STATE_DIR}/audit.jsonl"


class LedgerConfig(Section):
    """Where every prediction is recorded (DESIGN.md decision 4)."""

    enabled: bool = Field(True, description="record every prediction (turn off only to measure)")
    url: str = Field(
        f"sqlite:///{STATE_DIR}/ledger.db",
        description="sqlite:///path (WAL, the default) or postgresql://user@host/db",
    )
    mode: Literal["durable", "async"] = Field(
        "durable", description="durable: a response is sent only after its row is committed"
    )
    queue_size: int = Field(10_000, ge=1, description="rows waiting to be written; full -> 503")
    batch_rows: int = Field(2_000, ge=1, description="most rows written in one commit")
    retry_after_seconds: int = Field(1, ge=1, description="Retry-After sent with a 503")


class ServeConfig(Section):
    """``loopml serve``: where it listens, what it accepts, how it follows the registry."""

    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 exposes the server")
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    alias: str = Field("champion", description="the registry alias served")
    follow_alias: bool = Field(True, description="hot-reload when the alias moves")
    poll_seconds: float = Field(5.0, gt=0, description="how often the alias is checked")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    max_rows: int = Field(10_000, ge=1, description="most rows in one request")
    max_string_chars: int = Field(
        1024, ge=1, description="longest text in a string feature (or a longer known category)"
    )
    keep_alive_seconds: float = Field(5.0, gt=0, description="an idle kept-alive connection closes")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="a connection must send a request's headers within this"
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="a request's body must arrive within this (else 408)"
    )
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="larger request heads: 431")
    allowed_hosts: tuple[str, ...] = Field(
        ("127.0.0.1", "localhost", "::1"),
        description="Host headers accepted; '*' accepts any",
    )
    drain_seconds: float = Field(
        0.0, ge=0, description="after SIGTERM: answer not-ready this long before closing"
    )
    cors_origins: tuple[str, ...] = Field(
        (), description="origins allowed by CORS; none by default"
    )
    token_file: str = Field(f"{STATE_DIR}/admin.token", description="bearer token for admin routes")
    feedback_auth: Literal["token", "none"] = Field(
        "token",
        description="token: /feedback needs the feedback token (or the admin token) as "
        "'Authorization: Bearer'; none: anyone who reaches the port may send labels (only "
        "on a closed network; 'loopml serve' warns at start)",
    )
    feedback_token_file: str = Field(
        f"{STATE_DIR}/feedback.token", description="bearer token of the clients that send labels"
    )
    predict_auth: Literal["none", "token"] = Field(
        "none",
        description="token: /predict, /invocations and the OIP infer routes need the predict "
        "token (or the admin token). With none, any client may choose any request id, so it "
        "can take another client's id first and that client then gets 409; turn this on "
        "where clients must not squat request ids (or let the server make the ids)",
    )
    predict_token_file: str = Field(
        f"{STATE_DIR}/predict.token",
        description="bearer token of the clients that ask for predictions (predict_auth: token)",
    )
    cache_dir: str = Field(f"{STATE_DIR}/serving", description="downloaded serving artifacts")
    trust_pickle: bool = Field(
        False,
        description="load pickles once their sha256 matches the registry's: pickle-only "
        "serving artifacts, and a version's pipeline.joblib when building its artifact "
        "(unpickling runs code: only for your own models)",
    )
    ledger: LedgerConfig = LedgerConfig()

    @model_validator(mode="after")
    def _queue_holds_a_request(self) -> ServeConfig:
        if self.ledger.queue_size < self.max_rows:
            raise ValueError(
                f"ledger.queue_size ({self.ledger.queue_size}) must be at least max_rows "
                f"({self.max_rows}), or the largest request could never be recorded"
            )
        return self


class ProjectConfig(Section):
    """The whole project file. ``root`` is the folder relative paths are resolved in."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    data: DataConfig
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    gate: GateConfig = GateConfig()
    tracking: TrackingConfig = TrackingConfig()
    registry: RegistryConfig = RegistryConfig()
    serve: ServeConfig = ServeConfig()
    monitor: MonitorConfig = MonitorConfig()
    rollout: RolloutConfig = RolloutConfig()
    root: Path = Field(Path("."), exclude=True)

    def resolve(self, relative: str) -> Path:
        """A path from the project file, made absolute against the project's folder."""
        path = Path(relative)
        return path if path.is_absolute() else (self.root / path).resolve()

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def to_yaml(self) -> str:
        return yaml.safe_dump(
            self.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True
        )


def load_project(
    path: str | Path = PROJECT_FILE, environ: Mapping[str, str] | None = None
) -> ProjectConfig:
    """Read ``loopml.yaml``, apply ``LOOPML_`` overrides, and validate it.

    >>> load_project("does-not-exist.yaml")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    loopml.errors.ConfigError: no project file at does-not-exist.yaml
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"no project file at {file}",
            fix="run 'loopml init --data TABLE --target COLUMN' here, or pass --project PATH",
        )
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{file} is not valid YAML", detail=str(exc), fix="fix the syntax at the place shown"
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file} must hold a mapping of keys", fix="see 'loopml init --help'")
    merged = apply_env_overrides(raw, os.environ if environ is None else environ)
    return parse_project(merged, root=file.resolve().parent, source=str(file))


def parse_project(raw: Mapping[str, Any], *, root: Path, source: str) -> ProjectConfig:
    """Validate a mapping as a project file; errors name the key and the fix."""
    try:
        return ProjectConfig.model_validate({**raw, "root": root})
    except ValidationError as exc:
        raise _config_error(exc, source) from None


def apply_env_overrides(raw: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``LOOPML_SECTION__KEY=value`` variables; values are parsed as YAML scalars,
    except for keys that hold text, which take the value as written (so
    ``LOOPML_DATA__POSITIVE_CLASS=no`` is the class ``"no"``, not ``False``).

    >>> apply_env_overrides({"data": {}}, {"LOOPML_DATA__POSITIVE_CLASS": "no",
    ...                                    "LOOPML_TRAIN__SEED": "7"})
    {'data': {'positive_class': 'no'}, 'train': {'seed': 7}}
    """
    merged: dict[str, Any] = _deep_copy(raw)
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        node = merged
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name} overrides a value, not a section")
            node = child
        node[keys[-1]] = value if _holds_text(keys) else yaml.safe_load(value)
    return merged


def _holds_text(keys: list[str]) -> bool:
    """Whether the key at ``keys`` in the project file is text (``str`` or ``str | None``)."""
    model: Any = ProjectConfig
    annotation: Any = None
    for key in keys:
        fields = getattr(model, "model_fields", None)
        if fields is None or key not in fields:
            return False
        annotation = fields[key].annotation
        model = annotation
    return annotation is str or (
        typing.get_origin(annotation) in (typing.Union, types.UnionType)
        and set(typing.get_args(annotation)) == {str, type(None)}
    )


def _deep_copy(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in raw.items()}


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    lines = [_describe(err) for err in exc.errors()]
    first = lines[0]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return ConfigError(
        f"{source}: {first[0]}{more}",
        detail="\n".join(f"{key}: {msg}" for key, msg in ((ln[1], ln[2]) for ln in lines)),
        fix=first[3],
    )


def _describe(err: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(headline, key, message, fix) for one pydantic error."""
    loc = [str(part) for part in err["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return (
            f"unknown key '{key}'",
            key,
            f"not a known key; allowed here: {', '.join(allowed)}",
            f"{hint}remove or rename '{key}'",
        )
    if kind == "missing":
        return (f"missing key '{key}'", key, "required", f"add '{key}' to the project file")
    ctx = err.get("ctx") or {}
    if kind == "loopml_setting":  # a setting that contradicts another, with its own fix
        return (str(ctx["headline"]), key, str(ctx.get("detail", ctx["headline"])), ctx["fix"])
    message = str(err["msg"])
    return (
        f"bad value for '{key}': {message}",
        key,
        f"{message} (got {err.get('input')!r})",
        f"change '{key}' in the project file",
    )


def _allowed_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] = ProjectConfig
    for part in loc:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [name for name in model.model_fields if name != "root"]
