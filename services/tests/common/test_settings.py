import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource

from labelstream.common.settings import SETTINGS, Settings, SettingsError, settings_table

README = Path(__file__).resolve().parents[3] / "README.md"


def test_defaults_parse():
    settings = Settings.from_env({})
    assert settings.kafka_session_timeout_ms == 10000
    assert settings.grpc_port == 50051
    with pytest.raises(ValidationError):
        settings.grpc_port = 1  # frozen


def test_invalid_values_are_all_reported_with_the_variable_name():
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"LABELSTREAM_GRPC_PORT": "http", "LABELSTREAM_LOG_LEVEL": "LOUD",
                           "LABELSTREAM_KAFKA_POLL_MAX_RECORDS": "0"})
    message = str(error.value)
    assert message.startswith("invalid settings:\n  ") and len(message.splitlines()) == 4
    assert "LABELSTREAM_GRPC_PORT='http'" in message
    assert "LABELSTREAM_LOG_LEVEL='LOUD'" in message
    assert "LABELSTREAM_KAFKA_POLL_MAX_RECORDS='0': must be a positive integer" in message


def test_heartbeat_must_be_below_session_timeout():
    with pytest.raises(SettingsError, match="HEARTBEAT_INTERVAL_MS must be smaller"):
        Settings.from_env({"LABELSTREAM_KAFKA_SESSION_TIMEOUT_MS": "1000",
                           "LABELSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "1000"})


def test_credentials_are_redacted():
    settings = Settings.from_env({"LABELSTREAM_MONGODB_URI": "mongodb://user:secret@db:27017"})
    assert "secret" not in str(settings.redacted())


def test_readme_documents_every_setting():
    assert settings_table() in README.read_text(), "README's settings table is stale: paste `labelstream settings`"


def test_every_variable_is_declared_once_as_a_field(monkeypatch):
    names = list(Settings.model_fields)
    assert list(SETTINGS) == names and all(field.description for field in Settings.model_fields.values())
    table_variables = [row.split("`")[1] for row in settings_table().splitlines()[2:]]
    expected = [f"LABELSTREAM_{name.upper()}" for name in names]
    assert table_variables == [setting.env for setting in SETTINGS.values()] == expected
    # ... and these are the names pydantic-settings reads for the fields.
    for setting in SETTINGS.values():
        monkeypatch.setenv(setting.env, setting.default)
    assert set(EnvSettingsSource(Settings)()) == set(names)


def test_a_given_mapping_is_not_mixed_with_os_environ(monkeypatch):
    for key in [key for key in os.environ if key.startswith("LABELSTREAM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LABELSTREAM_GRPC_PORT", "1234")
    assert Settings.from_env().grpc_port == 1234  # None: os.environ
    assert Settings.from_env({}).grpc_port == 50051  # a mapping: only it and the defaults
    assert Settings.from_env({"LABELSTREAM_METRICS_PORT": "9"}).grpc_port == 50051
    monkeypatch.setenv("LABELSTREAM_LOG_LEVEL", "LOUD")
    assert Settings.from_env({}).log_level == "INFO"


@pytest.mark.parametrize(("env", "raw", "value"), [
    ("LABELSTREAM_LOG_LEVEL", "debug", "DEBUG"),
    ("LABELSTREAM_KAFKA_SASL_MECHANISM", " scram-sha-256", "SCRAM-SHA-256"),
    ("LABELSTREAM_MONGODB_DATABASE", " db ", "db"), ("LABELSTREAM_HTTP_PORT", "65535", 65535),
    ("LABELSTREAM_KAFKA_BATCH_WAIT_MS", "0", 0), ("LABELSTREAM_KAFKA_SASL_USERNAME", " svc ", " svc ")])
def test_values_are_normalised(env, raw, value):
    name = env.removeprefix("LABELSTREAM_").lower()
    assert getattr(Settings.from_env({env: raw}), name) == value


@pytest.mark.parametrize(("env", "raw", "problem"), [
    ("LABELSTREAM_HTTP_PORT", "65536", "must be a port number between 0 and 65535"),
    ("LABELSTREAM_KAFKA_BATCH_WAIT_MS", "-1", "must be zero or a positive integer"),
    ("LABELSTREAM_GRPC_THREADS", "many", "must be a positive integer"),
    ("LABELSTREAM_TRITON_URL", " ", "must not be empty"),
    ("LABELSTREAM_KAFKA_SECURITY_PROTOCOL", "TLS", "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")])
def test_invalid_values_say_what_is_wrong(env, raw, problem):
    with pytest.raises(SettingsError, match=f"{env}={raw!r}: {problem} \\("):
        Settings.from_env({env: raw})


def test_kafka_security_options():
    plain = Settings.from_env({}).kafka_client_options()
    assert plain["security_protocol"] == "PLAINTEXT" and "sasl_plain_password" not in plain
    secure = Settings.from_env({
        "LABELSTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "LABELSTREAM_KAFKA_SSL_CAFILE": "/etc/kafka/ca.crt",
        "LABELSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "LABELSTREAM_KAFKA_SASL_USERNAME": "svc",
        "LABELSTREAM_KAFKA_SASL_PASSWORD": "s3cret"})
    options = secure.kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL" and options["ssl_cafile"] == "/etc/kafka/ca.crt"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in str(secure.redacted())
    with pytest.raises(SettingsError, match="needs LABELSTREAM_KAFKA_SASL_USERNAME"):
        Settings.from_env({"LABELSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
