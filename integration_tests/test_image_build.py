"""The container image, built for real with buildah (no Docker engine here; shared/STACK.md) from
deploy/image/Containerfile on a local Debian base made with debootstrap, then run: each service's
entrypoint far enough to print its settings, and Triton serving the model repository baked into it.

Slow (about 2-3 minutes here: debootstrap ~30 s, image ~70 s, checks ~20 s); needs root, network
to the Debian mirror and PyPI. Skips only when buildah or debootstrap cannot be installed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labelstream.cli.projects import load_project
from labelstream.cli.stack import REPO_ROOT, SERVICES, free_ports, http_ok
from labelstream.inference.triton import TritonClassifier

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

log = logging.getLogger(__name__)
DEBIAN_SUITE, DEBIAN_MIRROR = "bookworm", "http://deb.debian.org/debian"
# The base the tests build FROM instead of python:3.11-slim (no registry can be pulled from here).
BASE_PACKAGES = "python3,python3-venv,libpython3.11,ca-certificates"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
ENTRYPOINT = "/opt/labelstream/bin/labelstream-entrypoint"
IMAGE = "localhost/labelstream:test"


@dataclass
class Built:
    buildah: list[str]
    container: str
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, *argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        flags = [f"--env={key}={value}" for key, value in (env or {}).items()]
        return subprocess.run([*self.buildah, "run", "--isolation", "chroot", *flags, self.container, "--", *argv],
                              capture_output=True, text=True, timeout=timeout)


def _require_tools() -> None:
    assert os.geteuid() == 0, "building with buildah --storage-driver vfs --isolation chroot needs root"
    assert shutil.which("buildah") and shutil.which("debootstrap"), (
        "buildah and debootstrap are missing: scripts/install-test-tools.sh installs them")


def llama_cpp_requirement() -> str:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    (version,) = [package["version"] for package in lock["package"] if package["name"] == "llama-cpp-python"]
    return f"llama-cpp-python=={version}"


def _name(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def runtime_set() -> set[str]:
    """The packages of uv.lock the image should hold: labelstream's dependencies and its models extra."""
    argv = [str(Path(sys.executable).parent / "uv"), "export", "--frozen", "--no-emit-project", "--no-hashes",
            "--no-annotate", "--no-header", "--extra=models"]
    lines = _check(subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120), "uv export")
    return {_name(line.split("==")[0]) for line in lines.stdout.splitlines() if "==" in line}


def _check(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{output}"
    return result


def _timed(timings: dict[str, float], name: str, argv: list[str], timeout: float, cwd: Path | None = None) -> None:
    start = time.monotonic()
    _check(subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd), name)
    timings[name] = round(time.monotonic() - start, 1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    _require_tools()
    work = tmp_path_factory.mktemp("image")
    buildah = ["buildah", "--root", str(work / "storage"), "--runroot", str(work / "run"), "--storage-driver", "vfs"]
    timings: dict[str, float] = {}
    try:
        rootfs, context = work / "rootfs", work / "base"
        context.mkdir()
        _timed(timings, "debootstrap", ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", DEBIAN_SUITE,
                                        str(rootfs), DEBIAN_MIRROR], 900)
        _check(subprocess.run(["tar", "-C", str(rootfs), "-cf", str(context / "rootfs.tar"), "."],
                              capture_output=True, text=True, timeout=300), "tar of the base")
        (context / "Containerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n')
        _timed(timings, "base image", [*buildah, "bud", "--isolation", "chroot", "-t",
                                       "localhost/labelstream-base:test", str(context)], 600)
        build_args = ["--build-arg", "BASE_IMAGE=localhost/labelstream-base:test"]
        # The llama-cpp-python wheel scripts/setup.sh built (pip's cache): no 6-minute compile in the image.
        wheels = work / "wheels"
        _timed(timings, "wheels", [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                                   llama_cpp_requirement()], 900)
        build_args += ["-v", f"{wheels}:/wheels:ro"]
        if HOST_CA.exists():  # pip behind this machine's TLS-inspecting proxy
            build_args += ["--build-arg", "PIP_CERT=/run/host-ca.crt", "-v", f"{HOST_CA}:/run/host-ca.crt:ro"]
        _timed(timings, "image", [*buildah, "bud", "--isolation", "chroot", "--layers=false", *build_args,
                                  "-f", "deploy/image/Containerfile", "-t", IMAGE, "."], 1500, cwd=REPO_ROOT)
        container = _check(subprocess.run([*buildah, "from", IMAGE], capture_output=True, text=True, timeout=300),
                           "buildah from").stdout.strip()
        log.info("image build timings: %s", timings)
        yield Built(buildah, container, timings)
    finally:
        subprocess.run([*buildah, "rm", "--all"], capture_output=True, timeout=300)
        subprocess.run(["rm", "-rf", str(work)], capture_output=True, timeout=600)


def test_the_image_is_non_root_and_its_command_picks_what_runs(built: Built):
    config = json.loads(_check(subprocess.run([*built.buildah, "inspect", "--type", "image", IMAGE],
                                              capture_output=True, text=True, timeout=60), "inspect").stdout)
    oci = config["OCIv1"]["config"]
    assert oci["Entrypoint"] == [ENTRYPOINT] and oci["Cmd"] == ["help"]
    assert oci["User"] == "10001:10001"
    assert _check(built.run("id", "-u"), "id").stdout.strip() == "10001"
    usage = _check(built.run(ENTRYPOINT), "help").stdout
    for word in (*SERVICES, "triton", "create-topics"):
        assert word in usage
    assert "--partitions" in _check(built.run(ENTRYPOINT, "create-topics", "--help"), "create-topics").stdout
    assert "LABELSTREAM_KAFKA_BOOTSTRAP" in _check(built.run(ENTRYPOINT, "settings"), "settings").stdout
    assert built.run("touch", "/opt/labelstream/x").returncode != 0  # the app's files are not writable


def test_the_image_holds_the_runtime_set_of_the_lock_and_nothing_else(built: Built):
    listed = _check(built.run("/opt/venv/bin/python", "-m", "pip", "list", "--format=freeze"), "pip list").stdout
    installed = {_name(line.split("==")[0]) for line in listed.splitlines() if "==" in line}
    assert installed - {"pip", "setuptools", "labelstream"} == runtime_set()
    assert not {"crowd-kit", "transformers", "torch", "pytest"} & installed


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_entrypoint_prints_its_settings(built: Built, service: str):
    env = {"LABELSTREAM_KAFKA_BOOTSTRAP": "kafka-0:9092,kafka-1:9092",
           "LABELSTREAM_MONGODB_URI": "mongodb://labeler:s3cret-pw@mongodb:27017", "LABELSTREAM_GRPC_PORT": "50051"}
    result = _check(built.run(ENTRYPOINT, service, "--check", env=env), f"{service} --check")
    shown = json.loads(result.stdout)
    assert shown["service"] == service and shown["consumer_group"] == f"labelstream-{service}"
    assert shown["settings"]["kafka_bootstrap"] == "kafka-0:9092,kafka-1:9092"
    assert shown["settings"]["mongodb_uri"] == "mongodb://***@mongodb:27017"
    assert "s3cret-pw" not in result.stdout + result.stderr
    bad = built.run(ENTRYPOINT, service, "--check", env={"LABELSTREAM_METRICS_PORT": "nine"})
    assert bad.returncode == 2 and "LABELSTREAM_METRICS_PORT='nine'" in bad.stderr


def test_triton_in_the_image_serves_the_baked_model_repository(built: Built, tmp_path: Path):
    grpc_port, http_port, metrics_port = free_ports(3)
    argv = [*built.buildah, "run", "--isolation", "chroot", "--env=TRITON_INSTANCE_KIND=KIND_CPU",
            "--env=TRITON_INSTANCE_COUNT=2", built.container, "--", ENTRYPOINT, "triton",
            f"--grpc-port={grpc_port}", f"--http-port={http_port}", f"--metrics-port={metrics_port}",
            "--grpc-address=127.0.0.1", "--http-address=127.0.0.1"]
    log_path = tmp_path / "triton.log"
    with log_path.open("wb") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}/v2"
    try:
        deadline = time.monotonic() + 180
        while not http_ok(f"{base}/health/ready"):
            assert server.poll() is None, f"triton exited:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"triton not ready:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.5)
        with urllib.request.urlopen(f"{base}/models/encoder_fewshot/config", timeout=5) as response:
            config = json.loads(response.read())
        assert [(g["kind"], g["count"]) for g in config["instance_group"]] == [("KIND_CPU", 2)]
        spec = load_project(REPO_ROOT / "deploy" / "examples" / "sst2" / "project.yaml")
        output = TritonClassifier(f"127.0.0.1:{grpc_port}", 30).predict(
            spec.model, ["a gorgeous, moving film", "dull and lifeless"], spec)
        labels = list(spec.labels)
        assert [labels[row.argmax()] for row in output.probabilities] == ["positive", "negative"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
