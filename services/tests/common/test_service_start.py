import os
import subprocess
import sys


def test_a_service_with_invalid_settings_exits_2_naming_the_variable():
    env = {**os.environ, "LABELSTREAM_GRPC_PORT": "not-a-port", "LABELSTREAM_KAFKA_POLL_TIMEOUT_MS": "-5"}
    result = subprocess.run([sys.executable, "-m", "labelstream.router"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "LABELSTREAM_GRPC_PORT='not-a-port'" in result.stderr
    assert "LABELSTREAM_KAFKA_POLL_TIMEOUT_MS='-5'" in result.stderr
