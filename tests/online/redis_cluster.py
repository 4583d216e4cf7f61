"""A real local Redis Cluster of three masters for the tests: `redis-server --cluster-enabled yes`
on three free loopback ports, files in a temporary folder, joined by `redis-cli --cluster create`.

redis-server and redis-cli come from the Debian `redis-server` package that scripts/setup.sh
installs. The cluster is started once per test session and stopped at its end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.cluster

NODES = 3
READY_TIMEOUT_S = 30


@dataclass
class LocalCluster:
    ports: list[int]
    processes: list[subprocess.Popen]

    @property
    def url(self) -> str:
        """Any node is a startup node: the client learns the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster.from_url(self.url)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_ports(count: int) -> list[int]:
    """Ports free now whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _wait(check, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            if check():
                return
        except (redis.RedisError, redis.cluster.RedisClusterException):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the local Redis Cluster: {what} within {READY_TIMEOUT_S}s")
        time.sleep(0.1)


def start_cluster(folder: Path) -> LocalCluster:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
    ports = _free_ports(NODES)
    processes = []
    cluster = LocalCluster(ports, processes)
    try:
        for port in ports:
            data = folder / str(port)
            data.mkdir(parents=True)
            argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
            log = open(data / "redis.log", "wb")  # noqa: SIM115 - the server keeps writing it
            processes.append(
                subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            )
            log.close()
        for port in ports:
            node = redis.Redis(port=port)
            _wait(node.ping, f"node {port} did not answer")
            node.close()
        nodes = [f"127.0.0.1:{p}" for p in ports]
        create = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True)
        for port in ports:
            node = redis.Redis(port=port)
            _wait(
                lambda node=node: node.execute_command("CLUSTER INFO")["cluster_state"] == "ok",
                f"node {port} did not see every slot covered",
            )
            node.close()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()
