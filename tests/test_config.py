"""Root config: YAML loading, ${ENV} interpolation, CLI overrides, one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import (
    PipelineConfig,
    apply_override,
    build_config,
    interpolate_env,
    load_config,
    sources_from_cli,
)
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
    PipelineConfig.model_validate({"sources": [{"id": entry["id"], "url": "x.mp4"}]})


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


def test_config_reference_is_generated_from_the_models() -> None:
    reference = config_reference_markdown()
    assert (ROOT / "docs" / "CONFIG.md").read_text() == reference, (
        "regenerate: python -m pipeline.config > docs/CONFIG.md"
    )
    for option in ("`fps_cap`", "`batch_size`", "`live_queue_size`", "`stream_key`", "`camera_motion`"):
        assert option in reference
