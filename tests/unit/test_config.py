from __future__ import annotations

import pytest

from streams.config import FailPolicy, FindingFormat, Settings
from streams.errors import ConfigError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.topics.events == "chat.events"
    assert settings.policy.fail_policy is FailPolicy.FAIL_CLOSED
    assert settings.engine.spec.startswith("vllm:")


def test_env_overrides_are_typed() -> None:
    settings = Settings.from_env(
        {
            "GUARDSTREAM_KAFKA_BOOTSTRAP": "kafka:9092",
            "GUARDSTREAM_BATCH_MAX_IN_FLIGHT": "128",
            "GUARDSTREAM_BATCH_DRAIN_TIMEOUT_S": "0.2",
            "GUARDSTREAM_POLICY_FAIL_POLICY": "FAIL_OPEN",
            "GUARDSTREAM_TELEMETRY_CAPTURE_CONTENT": "yes",
            "GUARDSTREAM_ENGINE_SERVED_MODEL_NAME": "gr-1b",
        }
    )
    assert settings.kafka.bootstrap == "kafka:9092"
    assert settings.batch.max_in_flight == 128
    assert settings.batch.drain_timeout_s == 0.2
    assert settings.policy.fail_policy is FailPolicy.FAIL_OPEN
    assert settings.telemetry.capture_content is True
    assert settings.engine.served_model_name == "gr-1b"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GUARDSTREAM_BATCH_MAX_IN_FLIGHT": "many"}, "not a valid int"),
        ({"GUARDSTREAM_POLICY_FAIL_POLICY": "sometimes"}, "not a valid FailPolicy"),
        ({"GUARDSTREAM_KAFKA_BOOTSTRAPP": "x"}, "unknown settings"),
    ],
)
def test_bad_values_are_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_every_setting_is_documented_in_the_readme() -> None:
    """The README's configuration table names every GUARDSTREAM_ variable the code reads
    (either in full, or as ``_FIELD`` on the row of its group's first variable)."""
    from dataclasses import fields
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `GUARDSTREAM_")]
    missing = []
    for group in fields(Settings):
        prefix = f"GUARDSTREAM_{group.name}_".upper()
        for f in fields(getattr(Settings(), group.name)):
            name = f"{prefix}{f.name.upper()}"
            if name in readme:
                continue
            if not any(prefix in row and f"`_{f.name.upper()}`" in row for row in rows):
                missing.append(name)
    assert missing == []


def test_inconsistent_settings_fail_at_start() -> None:
    from dataclasses import replace

    base = Settings()
    with pytest.raises(ConfigError, match="MAX_UNACKED"):
        replace(base, batch=replace(base.batch, max_unacked=10)).check()
    with pytest.raises(ConfigError, match="AUTO_OFFSET_RESET"):
        replace(base, kafka=replace(base.kafka, auto_offset_reset="middle")).check()
    with pytest.raises(ConfigError, match="MAX_TOKENS"):
        replace(base, engine=replace(base.engine, max_tokens=5000)).check()
    assert base.check() is base


def test_findings_privacy_and_categories_settings() -> None:
    defaults = Settings.from_env({})
    assert defaults.findings.enabled() == (
        FindingFormat.ECS,
        FindingFormat.OCSF,
    )  # on by default (and in `up`)
    assert defaults.privacy.include_text is False
    assert defaults.categories.taxonomy_file == ""
    assert {defaults.topics.findings_ecs, defaults.topics.findings_ocsf} <= set(defaults.topics.outputs())
    settings = Settings.from_env(
        {
            "GUARDSTREAM_FINDINGS_FORMATS": " OCSF ",
            "GUARDSTREAM_PRIVACY_INCLUDE_TEXT": "true",
            "GUARDSTREAM_CATEGORIES_TAXONOMY_FILE": "/etc/guardstream/taxonomy.json",
            "GUARDSTREAM_TOPICS_FINDINGS_ECS": "siem.ecs",
        }
    )
    assert settings.findings.enabled() == (FindingFormat.OCSF,)
    assert settings.privacy.include_text is True
    assert settings.categories.taxonomy_file == "/etc/guardstream/taxonomy.json"
    assert settings.topics.findings_ecs == "siem.ecs"
    assert Settings.from_env({"GUARDSTREAM_FINDINGS_FORMATS": ""}).findings.enabled() == ()
    assert Settings.from_env(settings.to_env()) == settings
    isolated = settings.isolated("t")
    assert isolated.topics.findings_ocsf.startswith("moderation.findings.ocsf.t-")
    with pytest.raises(ConfigError, match="FINDINGS_FORMATS.*splunk"):
        Settings.from_env({"GUARDSTREAM_FINDINGS_FORMATS": "ecs,splunk"})
