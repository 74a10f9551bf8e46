"""Store and console settings, and the new commands' wiring."""

from __future__ import annotations

import pytest

from streams.cli import build_parser
from streams.config import Settings
from streams.errors import ConfigError
from streams.store.database import Database, redact_url
from streams.store.errors import StoreError


def test_the_store_defaults_to_the_embedded_server_in_the_data_folder() -> None:
    settings = Settings.from_env({})
    assert settings.store.database_url == f"embedded:{settings.store.data_dir}/postgres"
    assert settings.console.host == "127.0.0.1"
    moved = Settings.from_env({"GUARDSTREAM_STORE_DATA_DIR": "/srv/gs"})
    assert moved.store.database_url == "embedded:/srv/gs/postgres"


def test_store_and_console_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "GUARDSTREAM_STORE_URL": "postgresql://gs:pw@db:5432/guard",
            "GUARDSTREAM_STORE_BATCH_MAX_SIZE": "1000",
            "GUARDSTREAM_CONSOLE_PORT": "9000",
            "GUARDSTREAM_CONSOLE_COOKIE_SECURE": "true",
            "GUARDSTREAM_CONSOLE_TLS_CERT": "/etc/tls/cert.pem",
        }
    )
    assert settings.store.database_url == "postgresql://gs:pw@db:5432/guard"
    assert settings.store.batch_max_size == 1000
    assert settings.console.port == 9000 and settings.console.tls_cert == "/etc/tls/cert.pem"
    assert "pw" not in repr(settings.store)  # the URL may carry a password
    assert Settings.from_env(settings.to_env()) == settings  # child processes get the same settings
    with pytest.raises(ConfigError, match="unknown settings"):
        Settings.from_env({"GUARDSTREAM_STORE_URI": "x"})


def test_passwords_never_reach_messages() -> None:
    assert redact_url("postgresql://gs:hunter2@db:5432/guard") == "postgresql://gs:***@db:5432/guard"
    assert (
        redact_url("postgresql://postgres:@/postgres?host=/tmp/x")
        == "postgresql://postgres:***@/postgres?host=/tmp/x"
    )
    with pytest.raises(StoreError, match="expected postgresql") as info:
        Database("mysql://root:hunter2@db/x").open(migrate=False)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["store", "--bootstrap", "kafka:9092"],
        ["console", "--host", "192.0.2.10", "--port", "8443"],
        ["users", "add", "rita", "--role", "reviewer", "--password-stdin"],
        ["users", "list"],
        ["export", "--format", "dpo", "--out", "pairs.jsonl"],
    ],
)
def test_the_commands_parse(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.func)


def test_users_add_requires_the_password_on_stdin() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["users", "add", "rita", "--role", "reviewer"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["users", "add", "rita", "--role", "owner", "--password-stdin"])
