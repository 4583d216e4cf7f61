"""Airflow Connections as JStore settings: the stores a DAG task uses.

Airflow users keep PostgreSQL, Redis, MongoDB and Kafka in Connections. A DAG task builds its
settings with `task_settings()`: each store whose connection (`Settings.<store>_conn_id`) is
defined replaces the matching JSTORE_* setting; a store whose connection is not defined keeps
it. Spark jobs a task submits get the result in their environment (`spark_submit.job_environment`),
never on a command line. A `TableSource.connection` is resolved the same way (`postgres_dsn`).

Connections are looked up with Airflow's own `BaseHook.get_connection` (a secrets backend, an
`AIRFLOW_CONN_<ID>` environment variable, or the metadata database), imported only when a
lookup happens: `jstore` imports no adapter at module level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from pydantic import SecretStr

from jstore.config import Settings

log = logging.getLogger(__name__)

LIBPQ_EXTRAS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
    }
)
"""Extras of a PostgreSQL connection that are libpq parameters (others, such as the Postgres
provider's `cursor`, are Airflow's own and are left out of the DSN)."""


class Connection(Protocol):
    """The fields of an Airflow Connection that JStore reads."""

    conn_type: str | None
    host: str | None
    port: int | None
    login: str | None
    password: str | None
    schema: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


def _credentials(conn: Connection) -> str:
    """`login:password@`, `:password@` or nothing, quoted for a URL."""
    if not conn.login and not conn.password:
        return ""
    password = f":{quote(conn.password, safe='')}" if conn.password else ""
    return f"{quote(conn.login or '', safe='')}{password}@"


def postgres_dsn(conn: Connection) -> str:
    """`postgresql://login:password@host:port/schema?<libpq extras>`."""
    extras = {k: v for k, v in conn.extra_dejson.items() if k in LIBPQ_EXTRAS}
    query = f"?{urlencode(extras)}" if extras else ""
    return (
        f"postgresql://{_credentials(conn)}{conn.host or '127.0.0.1'}:{conn.port or 5432}"
        f"/{conn.schema or ''}{query}"
    )


def redis_url(conn: Connection) -> str:
    """`redis[s]://[login]:password@host:port/db`, db from the extra `db` or the schema."""
    extra = conn.extra_dejson
    db = extra.get("db", conn.schema or 0)
    scheme = "rediss" if str(extra.get("ssl", "")).lower() == "true" else "redis"
    return f"{scheme}://{_credentials(conn)}{conn.host or '127.0.0.1'}:{conn.port or 6379}/{db}"


def mongo_fields(conn: Connection) -> dict[str, str]:
    """`mongo_uri` (`mongodb[+srv]://login:password@host[:port]/?<extras>`, extras such as
    `authSource` or `tls` as URI options) and `mongo_db` from the schema, when set."""
    extra = {k: v for k, v in conn.extra_dejson.items() if k != "srv"}
    srv = str(conn.extra_dejson.get("srv", "")).lower() == "true"
    port = "" if srv or not conn.port else f":{conn.port}"
    options = {k: str(v).lower() if isinstance(v, bool) else v for k, v in extra.items()}
    query = f"?{urlencode(options)}" if options else ""
    scheme = "mongodb+srv" if srv else "mongodb"
    fields = {
        "mongo_uri": f"{scheme}://{_credentials(conn)}{conn.host or '127.0.0.1'}{port}/{query}"
    }
    if conn.schema:
        fields["mongo_db"] = conn.schema
    return fields


def kafka_bootstrap(conn: Connection) -> str:
    """The Kafka provider's extra `bootstrap.servers`, else `host:port`."""
    servers = conn.extra_dejson.get("bootstrap.servers")
    return str(servers) if servers else f"{conn.host or '127.0.0.1'}:{conn.port or 9092}"


STORES: Mapping[str, Callable[[Connection], dict[str, Any]]] = {
    "postgres_conn_id": lambda c: {"postgres_dsn": SecretStr(postgres_dsn(c))},
    "redis_conn_id": lambda c: {"redis_url": redis_url(c)},
    "mongo_conn_id": mongo_fields,
    "kafka_conn_id": lambda c: {"kafka_bootstrap": kafka_bootstrap(c)},
}
"""Each store's connection-id setting, and the settings its connection gives."""


def with_connections(settings: Settings, lookup: Callable[[str], Connection | None]) -> Settings:
    """`settings` with each store whose connection `lookup` finds taken from it."""
    updates: dict[str, Any] = {}
    for id_field, fields in STORES.items():
        conn_id = getattr(settings, id_field)
        conn = lookup(conn_id)
        if conn is None:
            log.info("%s: no Airflow connection %r, using the JSTORE_* setting", id_field, conn_id)
            continue
        log.info("%s: using Airflow connection %r", id_field, conn_id)
        updates.update(fields(conn))
    return settings.model_copy(update=updates)


def airflow_connection(conn_id: str) -> Connection | None:
    """The Airflow Connection `conn_id`, or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def task_settings() -> Settings:
    """The settings of a DAG task: `Settings()` with the stores of the defined Connections."""
    return with_connections(Settings(), airflow_connection)
