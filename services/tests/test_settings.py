from pathlib import Path

import pytest

from labelstream.common.settings import SETTINGS, Settings, SettingsError, settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_parse():
    settings = Settings.from_env({})
    assert settings.kafka_session_timeout_ms == 10000
    assert settings.grpc_port == 50051


def test_invalid_values_are_all_reported_with_the_variable_name():
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"LABELSTREAM_GRPC_PORT": "http", "LABELSTREAM_LOG_LEVEL": "LOUD",
                           "LABELSTREAM_KAFKA_POLL_MAX_RECORDS": "0"})
    message = str(error.value)
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
    assert len(SETTINGS) == len(Settings.__dataclass_fields__)


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
