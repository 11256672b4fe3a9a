"""Root config: YAML loading, ${ENV} interpolation, CLI overrides, one-line errors naming the field."""

from __future__ import annotations

import random
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from pipeline.backoff import Backoff
from pipeline.config import (
    PipelineConfig,
    ReconnectConfig,
    RedisConfig,
    TrackerConfig,
    apply_override,
    build_config,
    interpolate_env,
    load_config,
    sources_from_cli,
)
from pipeline.config.base import BackoffConfig, StrictModel
from pipeline.config.reference import config_reference_markdown
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def error_of(tree: dict, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        build_config(tree, origin="cam.yaml", **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_bad_value_names_the_file_the_field_path_and_the_value() -> None:
    tree = {"sources": [{"id": "a", "url": "a.mp4"}, {"id": "b", "url": "b.mp4", "fps_cap": -2}]}
    assert error_of(tree) == "config error: cam.yaml: sources[1].fps_cap: must be greater than 0 (got -2)"


def test_unknown_keys_are_rejected_by_name() -> None:
    message = error_of({"sources": [{"id": "a", "url": "a.mp4"}], "batcher": {"batch_sise": 4}})
    assert message == "config error: cam.yaml: batcher.batch_sise: unknown option (got 4)"


def test_missing_sources_and_duplicate_ids() -> None:
    assert error_of({}) == "config error: cam.yaml: sources: required option is missing"
    message = error_of({"sources": [{"id": "a", "url": "x.mp4"}, {"id": "a", "url": "y.mp4"}]})
    assert "sources: source id 'a' is used twice" in message


def test_errors_never_show_credentials() -> None:
    tree = {"sources": [{"id": "a", "url": "a.mp4"}], "redis": {"url": "http://u:hunter2@host/0"}}
    message = error_of(tree)
    assert "redis.url: must start with redis://" in message and "hunter2" not in message


def test_env_interpolation_with_defaults_and_escapes() -> None:
    env = {"PW": "s3cret", "EMPTY": ""}
    tree = {"a": "redis://:${PW}@h/0", "b": ["${MISSING:-fallback}", "${EMPTY:-d}"], "c": "$${PW}", "d": 3}
    assert interpolate_env(tree, env) == {"a": "redis://:s3cret@h/0", "b": ["fallback", "d"], "c": "${PW}", "d": 3}
    with pytest.raises(ConfigError, match=r"config error: redis.url: environment variable PW is not set"):
        interpolate_env({"redis": {"url": "${PW}"}}, {})


def test_overrides_reach_nested_fields_and_list_items() -> None:
    tree: dict = {"sources": [{"id": "a", "url": "a.mp4"}]}
    apply_override(tree, "sources[0].fps_cap=5")
    apply_override(tree, "batcher.batch_size=8")
    apply_override(tree, "redis.url=redis://h:1/0")
    cfg = PipelineConfig.model_validate(tree)
    assert cfg.sources[0].fps_cap == 5 and cfg.batcher.batch_size == 8 and cfg.redis.url == "redis://h:1/0"
    with pytest.raises(ConfigError, match="index 3 is out of range"):
        apply_override(tree, "sources[3].fps_cap=1")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_override(tree, "batcher.batch_size")


def test_cli_sources_get_readable_unique_ids() -> None:
    entries = sources_from_cli(["a/lobby.mp4", "b/lobby.mp4", "gate=rtsp://u:p@cam/x?y=1", "rtsp://cam2.local/live"])
    assert [e["id"] for e in entries] == ["lobby", "lobby-2", "gate", "cam2.local-live"]
    assert entries[2]["url"] == "rtsp://u:p@cam/x?y=1"


@given(st.text(min_size=1, max_size=40))
def test_any_cli_source_gets_a_valid_id(spec: str) -> None:
    (entry,) = sources_from_cli([spec])
    cfg = PipelineConfig.model_validate({"sources": [{"id": entry["id"], "url": "x.mp4"}]})
    assert cfg.sources[0].id == entry["id"] and 1 <= len(entry["id"]) <= 64


def test_yaml_problems_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - id: a\n    url: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line \d+"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_config(tmp_path / "nope.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listed)


@pytest.mark.parametrize("name", ["demo", "file", "rtsp", "drone"])
def test_shipped_configs_are_valid(name: str) -> None:
    cfg = load_config(ROOT / "configs" / f"{name}.yaml", env={"REDIS_PASSWORD": "pw"})
    assert cfg.sources


def test_rtsp_config_reads_the_redis_password_from_the_environment() -> None:
    cfg = load_config(ROOT / "configs" / "rtsp.yaml", env={"REDIS_PASSWORD": "pw", "CAMERA_URL": "rtsp://c/1"})
    assert cfg.redis is not None and cfg.redis.url == "redis://:pw@localhost:6379/0"
    assert cfg.sources[0].url == "rtsp://c/1" and cfg.sources[0].live and cfg.model.weights == "auto"
    with pytest.raises(ConfigError, match="REDIS_PASSWORD is not set"):
        load_config(ROOT / "configs" / "rtsp.yaml", env={})


def test_command_line_values_replace_before_env_interpolation() -> None:
    # `maskstream run configs/rtsp.yaml --source rtsp://x/y --redis redis://localhost:1/0` with no REDIS_PASSWORD
    cfg = load_config(
        ROOT / "configs" / "rtsp.yaml",
        overrides=["redis.url='redis://localhost:1/0'", "model.weights=${WEIGHTS:-}"],
        sources=["rtsp://x/y"],
        env={},
    )
    assert cfg.redis is not None and cfg.redis.url == "redis://localhost:1/0"
    assert [s.url for s in cfg.sources] == ["rtsp://x/y"] and cfg.model.weights == "auto"
    # an override's own ${VAR} is still interpolated
    cfg = load_config(None, overrides=["redis.url=redis://:${PW}@h/0"], sources=["a.mp4"], env={"PW": "pw"})
    assert cfg.redis is not None and cfg.redis.url == "redis://:pw@h/0"


def _sections(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            for inner in (arg, *typing.get_args(arg)):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in found:
                    found |= _sections(inner)
    return found


def test_every_section_is_strict_and_backoff_is_one_setting() -> None:
    sections = _sections(PipelineConfig)
    assert {ReconnectConfig, RedisConfig, TrackerConfig} <= sections
    assert all(issubclass(section, StrictModel) for section in sections)
    assert issubclass(ReconnectConfig, BackoffConfig) and issubclass(RedisConfig, BackoffConfig)
    with pytest.raises(ConfigError, match=r"redis: max_backoff_s \(1.0\) must be >= initial_backoff_s \(2.0\)"):
        build_config({"sources": [{"id": "a", "url": "a.mp4"}], "redis": {"initial_backoff_s": 2, "max_backoff_s": 1}})


@given(st.integers(0, 200), st.floats(0.01, 5), st.floats(0, 1))
def test_backoff_doubles_up_to_the_cap_within_the_jitter(retry: int, initial: float, jitter: float) -> None:
    backoff = Backoff(initial_s=initial, max_s=initial * 16, jitter=jitter)
    base = min(initial * 16, initial * 2**retry)
    for seed in range(5):
        delay = backoff.delay(retry, random.Random(seed))
        assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9
    assert Backoff(1.0, 30.0, 0.0).delay(0) == 1.0 and Backoff(1.0, 30.0, 0.0).delay(3) == 8.0


def test_config_reference_is_generated_from_the_models() -> None:
    reference = config_reference_markdown()
    assert (ROOT / "docs" / "CONFIG.md").read_text() == reference, (
        "regenerate: python -m pipeline.config > docs/CONFIG.md"
    )
    for option in ("`fps_cap`", "`batch_size`", "`live_queue_size`", "`stream_key`", "`camera_motion`"):
        assert option in reference
