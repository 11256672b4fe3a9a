"""The root configuration: one pydantic tree composed of each stage owner's section.

Loading order: YAML (`yaml.safe_load`) → `${ENV}` / `${ENV:-default}` interpolation in string values (secrets stay
out of files) → CLI overrides (`--set sources[0].fps_cap=5`, `--source`, `--redis`, ...) → validation. Any problem
becomes ONE line naming the file, the field path and the bad value, e.g.
`config error: cam.yaml: sources[1].fps_cap: must be greater than 0 (got -2)`. Unknown keys are rejected.

`python -m pipeline.config` prints the reference of every option (docs/CONFIG.md is generated from it).
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import ConfigError
from pipeline.redact import redact_text
from stages.publisher import RedisConfig
from stages.source import SourceConfig
from tracking.config import TrackerConfig


class ModelConfig(BaseModel):
    """Which Mask R-CNN runs, where, and which of its detections count."""

    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(
        None,
        description="Path to a .safetensors weights file (ours, or torchvision COCO weights converted by "
        "`maskrcnn`); null = the bundled model trained on synthetic scenes.",
    )
    arch: str | None = Field(
        None, description="Registered architecture name; null = the one recorded in the weights' metadata."
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.",
    )
    precision: Literal["fp32", "fp16"] = Field(
        "fp32", description="fp16 runs the model under autocast on CUDA (ignored with a warning on the CPU)."
    )
    score_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Detections scoring below this are dropped.")
    mask_threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="A pixel belongs to an instance where its mask probability exceeds this."
    )
    classes: list[str] | None = Field(
        None, description="Keep only detections of these class names (checked against the model); null = all."
    )
    max_detections: int = Field(100, ge=1, le=1000, description="At most this many detections per frame.")
    roi_align: Literal["auto", "torchvision", "cupy", "host"] = Field(
        "auto",
        description="RoIAlign implementation: auto = our CuPy kernel on CUDA when available, else torchvision's; "
        "cupy = our kernel (CUDA only); host = our kernel's CPU build (for verification, slow).",
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for the model (torch intra-op); null = torch's default (one per core)."
    )

    @field_validator("weights", "arch")
    @classmethod
    def _empty_is_default(cls, value: str | None) -> str | None:
        # `weights: ${MASKSTREAM_WEIGHTS:-}` in a config means "the default" when the variable is unset
        return value or None


class BatcherConfig(BaseModel):
    """How frames of all sources are grouped into model batches, and how much may wait in front of the model."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(
        4, ge=1, le=64, description="At most this many frames per model call, from any mix of sources."
    )
    max_wait_ms: float = Field(
        20.0,
        ge=0.0,
        description="A batch leaves when full or when its first frame has waited this long (bounds live latency).",
    )
    file_queue_size: int = Field(
        8, ge=1, description="Frames a file source may decode ahead; a full queue pauses decoding (no frame lost)."
    )
    live_queue_size: int = Field(
        2,
        ge=1,
        description="Frames a live source may hold; when full the OLDEST is dropped (counted as stale), so latency "
        "stays bounded when the model is slower than the camera.",
    )
    pin_memory: bool = Field(
        True, description="On CUDA, stage frames in pinned host memory for asynchronous copies to the GPU."
    )


class SinksConfig(BaseModel):
    """Where results go besides Redis."""

    model_config = ConfigDict(extra="forbid")

    jsonl: Path | None = Field(None, description="Write every event as one JSON line to this file.")
    annotate: str | None = Field(
        None,
        description="Write an annotated H.264 MP4 (masks, boxes, class and track ids). With several sources put "
        "`{source_id}` in the path, else the source id is appended to the file name.",
    )
    mot_out: Path | None = Field(
        None, description="Write MOTChallenge-format tracks, one `<source_id>.txt` per source."
    )
    close_timeout_s: float = Field(
        30.0, gt=0.0, description="At shutdown, wait this long for sinks to flush (Redis spool, files)."
    )


class MetricsConfig(BaseModel):
    """The HTTP endpoint for Prometheus and orchestrators: /metrics, /healthz, /readyz."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(None, ge=0, le=65535, description="TCP port of the endpoint; null or 0 = off.")
    host: str = Field("0.0.0.0", description="Address to listen on (127.0.0.1 keeps it local).")


class LogConfig(BaseModel):
    """What the process says while it runs."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    progress: bool = Field(True, description="Show a progress bar (frames, fps, ETA) when every source is a file.")
    status_interval_s: float = Field(
        10.0, gt=0.0, description="With live sources, print a status line (fps, drops, latency, events) this often."
    )


class PipelineConfig(BaseModel):
    """Root of a maskstream config file."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(..., min_length=1, description="Video sources, processed concurrently.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The instance-segmentation model.")
    batcher: BatcherConfig = Field(default_factory=BatcherConfig, description="Cross-source batching.")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Multi-object tracking per source.")
    redis: RedisConfig | None = Field(None, description="Publish events to Redis Streams; null = no Redis.")
    sinks: SinksConfig = Field(default_factory=SinksConfig, description="Other outputs.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus and health endpoint.")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging and progress output.")

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        seen: set[str] = set()
        for source in sources:
            if source.id in seen:
                raise ValueError(f"source id {source.id!r} is used twice; ids must be unique")
            seen.add(source.id)
        return sources


# ---------------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------------

_ENV_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(value: Any, env: typing.Mapping[str, str] | None = None, path: str = "") -> Any:
    """Replace `${NAME}` and `${NAME:-default}` in every string of a loaded YAML tree; `$${` is a literal `${`."""
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: interpolate_env(v, env, _join(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, env, _join(path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"config error: {path or '<root>'}: environment variable {name} is not set")

    return _ENV_PATTERN.sub(substitute, value)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


_OVERRIDE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\d+")


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply `a.b[0].c=VALUE` (VALUE parsed as a YAML scalar/flow value) to a raw config tree, in place."""
    key, sep, raw_value = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"config error: override {assignment!r}: expected KEY=VALUE, e.g. model.device=cpu")
    parts: list[str | int] = []
    for token in key.strip().replace("][", "].[").split("."):
        for piece in _OVERRIDE_PATH.findall(token):
            parts.append(int(piece.strip("[]")) if piece.strip("[]").isdigit() else piece)
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError:
        value = raw_value
    node: Any = tree
    for position, part in enumerate(parts[:-1]):
        nxt = parts[position + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ConfigError(f"config error: override {key}: index {part} is out of range")
            node = node[part]
        else:
            if node.get(part) is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"config error: override {key}: index {last} is out of range")
        node[last] = value
    else:
        if not isinstance(node, dict):
            raise ConfigError(f"config error: override {key}: {last} is not inside a mapping")
        node[last] = value


_SOURCE_WITH_ID = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})=(.+)$")


def sources_from_cli(specs: list[str]) -> list[dict[str, Any]]:
    """`--source` values → source entries. `ID=URL` names the source; else the id comes from the file or host name."""
    entries: list[dict[str, Any]] = []
    used: set[str] = set()
    for spec in specs:
        match = _SOURCE_WITH_ID.match(spec)
        if match and "/" not in match.group(1):
            source_id, url = match.group(1), match.group(2)
        else:
            url = spec
            source_id = _derive_source_id(spec)
        base, n = source_id, 2
        while source_id in used:
            source_id, n = f"{base}-{n}", n + 1
        used.add(source_id)
        entries.append({"id": source_id, "url": url})
    return entries


def _derive_source_id(url: str) -> str:
    if "://" in url:
        parts = urlsplit(url)
        stem = (parts.hostname or "stream") + (parts.path.replace("/", "-").rstrip("-") or "")
    else:
        stem = Path(url).stem.replace("*", "all") or "source"
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]+", "-", stem).strip("-.:_") or "source"
    if not cleaned[0].isalnum():
        cleaned = "s" + cleaned
    return cleaned[:64]


def format_validation_error(exc: ValidationError, origin: str | None = None) -> str:
    """One line: `config error: FILE: path.to[1].field: what is wrong (got VALUE)`; several errors joined by `; `."""
    messages: list[str] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        path = _error_path(error["loc"])
        if path in seen:  # a union reports one error per member; the first says enough
            continue
        seen.add(path)
        message = _friendly_message(error)
        got = error.get("input")
        got_text = ""
        if error["type"] != "missing" and not isinstance(got, dict | list):
            shown = redact_text(repr(got))
            got_text = f" (got {shown[:80]}{'…' if len(shown) > 80 else ''})"
        messages.append(f"{path or '<root>'}: {message}{got_text}")
    prefix = f"config error: {origin}: " if origin else "config error: "
    return prefix + "; ".join(messages)


def _error_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" in part or "-" in part or part in {"str", "int", "float", "bool", "list", "dict", "none"}:
            continue  # pydantic's union/validator tags, not field names
        else:
            path = f"{path}.{part}" if path else part
    return path


def _friendly_message(error: dict[str, Any]) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown option"
    if kind == "missing":
        return "required option is missing"
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    elif message.startswith("String should match pattern "):
        message = "does not match " + message.removeprefix("String should match pattern ")
    return message[0].lower() + message[1:] if message[:2] != message[:2].upper() else message


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file into a raw tree (mapping); a one-line ConfigError for missing files or bad YAML."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config error: {file}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config error: {file}: cannot read ({type(exc).__name__})") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"config error: {file}: invalid YAML{where}: {problem}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(
            f"config error: {file}: the top level must be a mapping of options (got {type(tree).__name__})"
        )
    return tree


def build_config(
    tree: dict[str, Any],
    *,
    origin: str | None = None,
    overrides: list[str] | None = None,
    sources: list[str] | None = None,
    env: typing.Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Raw tree + env + overrides → validated config. `sources` (CLI `--source`) replace the file's sources."""
    tree = interpolate_env(copy.deepcopy(tree), env)
    if sources:
        tree["sources"] = sources_from_cli(sources)
    for assignment in overrides or []:
        apply_override(tree, interpolate_env(assignment, env, "--set"))
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None


def load_config(
    path: str | Path | None,
    *,
    overrides: list[str] | None = None,
    sources: list[str] | None = None,
    env: typing.Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Load, interpolate, override and validate a config file (`path=None`: start from defaults)."""
    tree = load_yaml(path) if path is not None else {}
    return build_config(
        tree, origin=str(path) if path is not None else None, overrides=overrides, sources=sources, env=env
    )


# ---------------------------------------------------------------------------------------------------------------
# reference documentation, generated from the models (one source of truth)
# ---------------------------------------------------------------------------------------------------------------


def config_reference_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m pipeline.config > docs/CONFIG.md`; edit the models' descriptions instead. -->",
        "",
        "A config file is YAML. String values may use `${NAME}` or `${NAME:-default}` to read environment variables",
        "(keep secrets such as Redis passwords out of files); `$${` writes a literal `${`. Unknown keys are errors.",
        "Any option can be overridden on the command line: `maskstream run CONFIG --set model.device=cpu",
        "--set sources[0].fps_cap=5`; `--source`, `--redis`, `--jsonl`, `--annotate`, `--mot-out`, `--device` and",
        "`--weights` are shortcuts. Errors name the file, the option path and the bad value in one line.",
        "",
        "Examples with every option commented: `configs/demo.yaml`, `configs/file.yaml`, `configs/rtsp.yaml`,",
        "`configs/drone.yaml`.",
        "",
    ]
    _model_section(PipelineConfig, "", lines, seen=set())
    return "\n".join(lines).rstrip() + "\n"


def _model_section(model: type[BaseModel], prefix: str, lines: list[str], seen: set[str]) -> None:
    title = prefix or "(top level)"
    lines += [f"## `{title}`", "", (model.__doc__ or "").strip(), "", "| Option | Type | Default | Description |"]
    lines.append("|---|---|---|---|")
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        default = "required" if field.is_required() else _default_text(field)
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | {_type_text(annotation)} | {default} | {description} |")
        for sub in _submodels(annotation):
            key = f"{prefix}.{name}" if prefix else name
            if _is_list(annotation):
                key += "[]"
            nested.append((sub, key))
    lines.append("")
    for sub, key in nested:
        if key not in seen:
            seen.add(key)
            _model_section(sub, key, lines, seen)


def _default_text(field: Any) -> str:
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value, default=str)}`"


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _submodels(arg)]


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_text(a) for a in typing.get_args(annotation))
    if origin is list:
        return f"list of {_type_text(typing.get_args(annotation)[0])}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        return "mapping" if issubclass(annotation, BaseModel) else annotation.__name__
    return str(annotation)


if __name__ == "__main__":
    sys.stdout.write(config_reference_markdown())
