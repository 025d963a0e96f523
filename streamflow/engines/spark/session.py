"""The one Spark session of a process, configured by us: the master (SPARK_MASTER, a local one
sized for this machine by default) or a Spark Connect server (SPARK_REMOTE), the driver's memory
and shuffle partitions (overridable), UTC always, the lake's warehouse, and the catalog.

The catalog is a Hive metastore in the project's own PostgreSQL (schema `spark_metastore`,
DataNucleus over Debian's JDBC driver), not Derby's embedded one: ingest, dbt, Feast's steps and
the tests run in different processes, sometimes at once, and Derby admits one JVM at a time
(XSDB6). PostgreSQL already holds the other logs; a cluster would point at its own metastore.

pyspark is imported only here, and only when the Spark engine is chosen: `make demo` and
`make pipeline` on PostgreSQL need neither pyspark nor Java.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from streamflow import config, database, targets
from streamflow.engines.lake import lake_dir
from streamflow.plugins import PrerequisiteMissing

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JAVA_PACKAGE = "openjdk-17-jre-headless"
JDBC_PACKAGE = "libpostgresql-jdbc-java"
JDBC_JAR = Path("/usr/share/java/postgresql.jar")
METASTORE_SCHEMA = "spark_metastore"
# Hive's metastore classes, whose tables DataNucleus creates when the metastore starts. Left to
# their first use, it creates them from a second connection while the first holds a lock on the
# table they reference, and waits for ever (Hive ships no schema scripts with Spark's jars).
METASTORE_CLASSES = ",".join(
    f"org.apache.hadoop.hive.metastore.model.M{name}"
    for name in (
        "Database", "Type", "Table", "StorageDescriptor", "SerDeInfo", "ColumnDescriptor", "Partition",
        "Index", "Constraint", "Function", "Role", "RoleMap", "GlobalPrivilege", "DBPrivilege",
        "TablePrivilege", "PartitionPrivilege", "TableColumnPrivilege", "PartitionColumnPrivilege",
        "TableColumnStatistics", "PartitionColumnStatistics", "PartitionEvent", "VersionTable",
        "NotificationLog", "NotificationNextId", "DelegationToken", "MasterKey",
    )
)  # fmt: skip


class SparkMissing(PrerequisiteMissing):
    """Something the Spark engine needs is not installed; the message names the package."""


class SparkUnreachable(RuntimeError):
    """SPARK_MASTER or SPARK_REMOTE names a server that does not answer (or no server at all)."""


CONNECT_TIMEOUT_S = 5.0
ENDPOINTS = {"spark": 7077, "sc": 15002}  # URL scheme -> its default port


def check_endpoint(variable: str, url: str) -> None:
    """One line naming the variable when its server does not take a connection, before a JVM
    starts (Spark itself retries a lost master for a minute, then prints pages of stack)."""
    parsed = urlsplit(url)
    if parsed.scheme not in ENDPOINTS or not parsed.hostname:
        raise SparkUnreachable(
            f"{variable}={url} is not a Spark URL "
            "(spark://HOST:PORT for a master, sc://HOST:PORT for Spark Connect)"
        )
    address = (parsed.hostname, parsed.port or ENDPOINTS[parsed.scheme])
    try:
        socket.create_connection(address, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        hint = "; `make spark-up` starts the project's cluster" if parsed.scheme == "spark" else ""
        raise SparkUnreachable(f"{variable}={url} does not answer ({exc.strerror or exc}){hint}") from None


def default_master() -> str:
    return f"local[{os.cpu_count() or 2}]"


def check_prerequisites() -> None:
    """One line naming what to install, before any JVM is started."""
    java = shutil.which("java")
    if java is None:
        raise SparkMissing(f"OFFLINE_ENGINE=spark needs Java 17: apt-get install {JAVA_PACKAGE}")
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    if '"17.' not in version and '"21.' not in version:
        first = version.splitlines()[0] if version else "unknown"
        raise SparkMissing(f"OFFLINE_ENGINE=spark needs Java 17 ({first}): apt-get install {JAVA_PACKAGE}")
    if not JDBC_JAR.is_file():
        raise SparkMissing(f"Spark's catalog needs PostgreSQL's JDBC driver: apt-get install {JDBC_PACKAGE}")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkMissing("OFFLINE_ENGINE=spark needs pyspark: make setup-spark") from None


def ensure_metastore_schema() -> None:
    with database.connect() as conn:
        conn.execute(f"create schema if not exists {METASTORE_SCHEMA}")
        conn.commit()


def metastore_conf(target: targets.PgTarget | None = None) -> dict[str, str]:
    """Hive's metastore in the project's PostgreSQL (its own schema; tables made on first use),
    as `target`'s role (the owner's by default)."""
    target = target or targets.admin_target()
    url = f"jdbc:postgresql://{target.host}:{target.port}/{target.database}?currentSchema={METASTORE_SCHEMA}"
    if target.keywords().get("sslmode") not in (None, "disable", "allow", "prefer"):
        url += "&ssl=true&sslmode=" + target.keywords()["sslmode"]
    jdo = {
        "javax.jdo.option.ConnectionURL": url,
        "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "javax.jdo.option.ConnectionUserName": target.user,
        "javax.jdo.option.ConnectionPassword": target.password or "",
        "datanucleus.schema.autoCreateAll": "true",
        "datanucleus.autoStartMechanism": "Classes",
        "datanucleus.autoStartClassNames": METASTORE_CLASSES,
        "hive.metastore.schema.verification": "false",
    }
    return {f"spark.hadoop.{key}": value for key, value in jdo.items()}


def jvm_options() -> str:
    """Every JVM in UTC (the marts must equal PostgreSQL's), plus SPARK_JVM_OPTIONS."""
    return " ".join(filter(None, ("-Duser.timezone=UTC", config.get(config.SPARK_JVM_OPTIONS).strip())))


def spark_conf() -> dict[str, str]:
    lake = lake_dir()
    return {
        "spark.master": config.get(config.SPARK_MASTER) or default_master(),
        "spark.app.name": "streamflow",
        # The driver listens on loopback only, like every other server of the project, unless
        # SPARK_LOCAL_IP says otherwise (its web UI reads that variable: exported in session())
        "spark.driver.host": config.get(config.SPARK_LOCAL_IP),
        "spark.driver.bindAddress": config.get(config.SPARK_LOCAL_IP),
        "spark.ui.killEnabled": "false",
        "spark.driver.memory": config.get(config.SPARK_DRIVER_MEMORY),
        "spark.sql.shuffle.partitions": str(config.get(config.SPARK_SHUFFLE_PARTITIONS)),
        # Every timestamp in UTC, whatever the machine's TZ: the marts must equal PostgreSQL's.
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": jvm_options(),
        "spark.executor.extraJavaOptions": jvm_options(),
        "spark.sql.warehouse.dir": str(lake / "warehouse"),
        "spark.sql.catalogImplementation": "hive",
        "spark.driver.extraClassPath": str(JDBC_JAR),
        # A month is rewritten alone: insert overwrite replaces the partitions it writes.
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.showConsoleProgress": "false",
        **metastore_conf(),
    }


@cache
def session() -> SparkSession:
    """This process's session (dbt-spark's `session` method joins it: getOrCreate).

    With SPARK_REMOTE the session is a Spark Connect client of that server, whose own settings
    (master, catalog, warehouse) then apply; only its refusal is tested here."""
    remote, master = config.get(config.SPARK_REMOTE), config.get(config.SPARK_MASTER)
    if remote:
        check_endpoint("SPARK_REMOTE", remote)
    elif master and not master.startswith("local"):
        check_endpoint("SPARK_MASTER", master)
    check_prerequisites()
    from pyspark.sql import SparkSession

    if remote:
        return SparkSession.builder.remote(remote).getOrCreate()
    ensure_metastore_schema()
    # Executors run our Python (materialize's writers): this interpreter, with its packages, not
    # the PATH's python3 (pyspark reads the variable only, not `spark.pyspark.python`)
    config.export({"PYSPARK_PYTHON": sys.executable})
    # the driver's web UI binds this address (0.0.0.0 without it): loopback unless told otherwise
    config.export({"SPARK_LOCAL_IP": config.get(config.SPARK_LOCAL_IP)})
    # pyspark hands collected timestamps to Python as naive times in the process's zone, and Feast's
    # Spark store reads the entity rows' time range that way (its partition bounds, its TTL edge):
    # this process reads them in UTC, as the JVMs do (-Duser.timezone=UTC), whatever TZ says.
    config.export({"TZ": "UTC"})
    time.tzset()
    builder = SparkSession.builder
    for key, value in spark_conf().items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
