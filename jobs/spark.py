"""The Spark session every JStore job uses: UTC everywhere, the JDBC driver on the classpath, and
the lake's filesystem (s3a:// for a lake on S3: jstore/lake_fs.py `spark_conf`)."""

from __future__ import annotations

from pyspark.sql import SparkSession

from jstore.config import Settings
from jstore.lake_fs import spark_conf, spark_jars


def spark_session(
    settings: Settings,
    app_name: str = "jstore",
    master: str | None = None,
    shuffle_partitions: int | None = None,
) -> SparkSession:
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.jars", spark_jars(settings))
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # a run reads one landing folder and one stored-tile part per day of its read range
        # (61 for 30-day windows over 30 days): listed by the driver, not by a Spark job of one
        # task per path, which Spark starts above 32 paths
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "1024")
    )
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    if master:
        builder = builder.master(master)
    if shuffle_partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    return builder.getOrCreate()
