"""JStore's settings: one object, read from ``JSTORE_*`` environment variables (and ``.env``).

The defaults point at the local servers that ``make services`` starts on loopback.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JSTORE_", env_file=".env", extra="forbid", frozen=True
    )

    project: str = Field("jstore", pattern=r"^[a-z][a-z0-9_]{0,39}$")
    """Namespace of this deployment: the Redis key prefix and the registry's project."""

    lake_uri: str = str(PROJECT_ROOT / ".jstore" / "lake")
    """Root of the landing zone, staging area, quarantine, quality reports and exports: a local
    path, or s3://bucket/prefix (s3a:// alike), gs://bucket/prefix (jstore/lake_fs.py)."""

    s3_endpoint_url: str | None = None
    """An S3-compatible server for an s3:// lake (MinIO, moto, Ceph: http://host:port); unset
    for AWS. Credentials and region: the standard AWS_* environment variables."""

    mongo_uri: str = "mongodb://127.0.0.1:57017"
    """The registry's MongoDB."""

    mongo_db: str = "jstore"
    """The registry's database name."""

    postgres_dsn: SecretStr = SecretStr("postgresql://jstore:jstore@127.0.0.1:55432/jstore")
    """The offline store (TimescaleDB, or plain PostgreSQL)."""

    offline_schema: str = Field("features", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """PostgreSQL schema that holds one table per feature view version."""

    redis_url: str = "redis://127.0.0.1:56379/0"
    """The online store (on a Redis Cluster: any one of its nodes, database 0)."""

    redis_cluster: bool = False
    """The online store is a Redis Cluster: keys are grouped per hash slot in every command."""

    kafka_bootstrap: str = "127.0.0.1:59092"
    """Kafka bootstrap servers, comma-separated."""

    kafka_session_timeout_ms: int = 6000
    """Consumer-group session timeout; small, so that group joins do not wait for long."""

    lease_duration_s: float = Field(60.0, gt=0)
    """How long a lander's or extract's lease on its source lasts unless its heartbeat renews it."""

    spark_master: str = "local[*]"
    """Spark master for jobs run by the CLI (Airflow uses its `spark_default` connection)."""

    jdbc_jar: str = "/usr/share/java/postgresql.jar"
    """PostgreSQL JDBC driver for Spark (Debian's libpostgresql-jdbc-java)."""

    extract_partitions: int = Field(4, ge=1)
    """Most JDBC partitions (parallel range reads on the timestamp column) of one extract; an
    extract reads at most one partition per hour of its interval."""

    spark_s3_jars: str = ""
    """Jars that give Spark s3a:// (hadoop-aws of Spark's Hadoop version and the AWS SDK
    bundle), comma-separated, added to every Spark job when the lake is on S3."""

    registry_snapshot: Path = PROJECT_ROOT / ".jstore" / "registry_snapshot.json"
    """The registry as a file, read by DAG files at parse time (no database call there)."""

    postgres_conn_id: str = "jstore_postgres"
    """Airflow Connection of the offline store; DAG tasks use `postgres_dsn` when it is not
    defined (so do the CLI and the API, which never read Connections)."""

    redis_conn_id: str = "jstore_redis"
    """Airflow Connection of the online store; DAG tasks use `redis_url` when it is not defined."""

    mongo_conn_id: str = "jstore_mongo"
    """Airflow Connection of the registry; DAG tasks use `mongo_uri` and `mongo_db` when it is
    not defined."""

    kafka_conn_id: str = "jstore_kafka"
    """Airflow Connection of Kafka; DAG tasks use `kafka_bootstrap` when it is not defined."""

    api_keys: str = ""
    """API keys: comma-separated `sha256hex:scope` entries (scope: read or write)."""

    api_auth_disabled: bool = False
    """Turn API-key checks off (local development only)."""

    api_max_entities: int = Field(1000, ge=1)
    """Most entities (or entity rows) one online or JSON training-set request may carry."""

    api_max_upload_bytes: int = Field(100 * 1024 * 1024, ge=1)
    """Largest entity file a training-set request may upload."""

    api_registry_cache_seconds: float = Field(5.0, ge=0)
    """How long the API reuses registry lookups (views, coverage, publishes) on the hot path."""

    drift_threshold: float = 0.2
    """Population stability index above which a feature's drift is flagged."""

    api_url: str = "http://127.0.0.1:8765"
    """Where users' browsers reach the JStore API (the Airflow UI links to its catalog)."""

    expectations_dir: Path = Path(str(files("jstore") / "expectations"))
    """User expectations: one Great Expectations suite JSON per feature view, `<view>.json`.
    The default is the example repo's, shipped inside the package (`jstore/expectations/`)."""

    @field_validator("lake_uri")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        return v.rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
