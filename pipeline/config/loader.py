"""Loading a config: YAML (`yaml.safe_load`) → CLI overrides (`--set`, `--source`, `--redis`) → `${ENV}` / `${ENV:-default}` interpolation → validation.

Any problem becomes ONE line naming the file, the field path and the bad value, e.g.
`config error: cam.yaml: sources[1].fps_cap: must be greater than 0 (got -2)`. Unknown keys are rejected.
"""

from __future__ import annotations

import copy
import os
import re
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.config.model import ModelConfig
from pipeline.config.root import PipelineConfig
from pipeline.errors import ConfigError, config_error
from pipeline.redact import redact_text

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
        raise config_error(path or "<root>", f"environment variable {name} is not set")

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
        raise config_error(f"override {assignment!r}", "expected KEY=VALUE, e.g. model.device=cpu")
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
                raise config_error(f"override {key}", f"index {part} is out of range")
            node = node[part]
        else:
            if node.get(part) is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise config_error(f"override {key}", f"index {last} is out of range")
        node[last] = value
    else:
        if not isinstance(node, dict):
            raise config_error(f"override {key}", f"{last} is not inside a mapping")
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


def validation_error(exc: ValidationError, origin: str | None = None) -> ConfigError:
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
    return config_error(origin, "; ".join(messages))


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


def _friendly_message(error: typing.Mapping[str, Any]) -> str:
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
        raise config_error(file, "no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise config_error(file, f"cannot read ({type(exc).__name__})") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise config_error(file, f"invalid YAML{where}", problem) from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise config_error(file, f"the top level must be a mapping of options (got {type(tree).__name__})")
    return tree


def build_config(
    tree: dict[str, Any],
    *,
    origin: str | None = None,
    overrides: list[str] | None = None,
    sources: list[str] | None = None,
    env: typing.Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Raw tree + overrides + env → validated config. `sources` (CLI `--source`) replace the file's sources.

    Overrides go in before `${ENV}` interpolation, so a value the command line replaces is never interpolated:
    `--redis redis://host/0` works without the REDIS_PASSWORD that the file's `redis.url` refers to."""
    tree = copy.deepcopy(tree)
    if sources:
        tree["sources"] = sources_from_cli(sources)
    for assignment in overrides or []:
        apply_override(tree, assignment)
    tree = interpolate_env(tree, env)
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as exc:
        raise validation_error(exc, origin) from None


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


class _ModelSection(BaseModel):
    """Just the `model` section of a config (other sections are left unread)."""

    model_config = ConfigDict(extra="ignore")

    model: ModelConfig = Field(default_factory=ModelConfig)


def load_model_config(
    path: str | Path | None, *, overrides: list[str] | None = None, env: typing.Mapping[str, str] | None = None
) -> ModelConfig:
    """The `model` section as `load_config` would load it (file, `--set`, `${ENV}`), without needing sources.

    `maskstream eval` scores the model with the options `maskstream run CONFIG` would give it.
    """
    tree = load_yaml(path) if path is not None else {}
    for assignment in overrides or []:
        apply_override(tree, interpolate_env(assignment, env, "--set"))
    section = {"model": interpolate_env(copy.deepcopy(tree.get("model") or {}), env, "model")}
    try:
        return _ModelSection.model_validate(section).model
    except ValidationError as exc:
        raise validation_error(exc, str(path) if path is not None else None) from None


# ---------------------------------------------------------------------------------------------------------------
# reference documentation, generated from the models (one source of truth)
# ---------------------------------------------------------------------------------------------------------------
