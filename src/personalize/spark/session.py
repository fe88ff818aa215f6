"""Starting Spark the way this project needs it, and telling a user clearly when it cannot start.

``spark_session(master)`` checks for Java and pyspark first (one
:class:`SparkUnavailableError` line each, which the CLI prints and exits 2
on), sets ``SPARK_LOCAL_IP`` (default 127.0.0.1 for ``local[...]``) and the
driver memory before the JVM starts, UTC as the session time zone (the data
contract's timestamps are naive UTC), Arrow transfer, and a small number of
shuffle partitions. :class:`JobProgress` reports Spark's own job progress
(stage, tasks done / total) to a callback while a block runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from personalize.errors import PersonalizeError

__all__ = ["SparkUnavailableError", "check_spark", "java_version", "spark_session", "JobProgress",
           "MIN_JAVA"]

#: Spark 4 runs on Java 17 or later
MIN_JAVA = 17


class SparkUnavailableError(PersonalizeError):
    """Java or pyspark is missing (or too old): the Spark path cannot run here."""


def _java_binary() -> str | None:
    """The java Spark's launcher runs: ``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        cand = Path(home) / "bin" / "java"
        return str(cand) if cand.is_file() else None
    return shutil.which("java")


def java_version() -> int | None:
    """Major version of the ``java`` Spark would start (``JAVA_HOME`` first, then ``PATH``); None if none."""
    java = _java_binary()
    if java is None:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def check_spark() -> None:
    """Raise :class:`SparkUnavailableError` (one line) unless pyspark imports and Java >= 17 is found."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailableError("pyspark is not installed: install the Spark extra with "
                                    "pip install 'personalize[spark]'") from None
    v = java_version()
    home = os.environ.get("JAVA_HOME")
    if v is None and home and not (Path(home) / "bin" / "java").is_file():
        raise SparkUnavailableError(f"JAVA_HOME={home} has no bin/java: point it at a Java {MIN_JAVA}+ "
                                    "installation or unset it")
    if v is None:
        raise SparkUnavailableError(f"Java not found: Spark needs Java {MIN_JAVA} or later on PATH or in "
                                    "JAVA_HOME (e.g. apt-get install openjdk-17-jre-headless)")
    if v < MIN_JAVA:
        raise SparkUnavailableError(f"Java {v} found, Spark needs Java {MIN_JAVA} or later "
                                    f"({_java_binary()}; set JAVA_HOME to a newer one)")


def spark_session(master: str = "local[2]", *, app_name: str = "personalize", driver_memory: str = "4g",
                  shuffle_partitions: int | None = None, conf: Mapping[str, Any] | None = None,
                  log_level: str = "ERROR"):
    """A SparkSession set up for this project (see the module docstring); reuses a running one.

    ``driver_memory`` only takes effect when this call starts the JVM (Spark
    reads it at launch). ``shuffle_partitions`` defaults to 2 x the cores of
    a ``local[N]`` master (8 otherwise; a cluster's own default wins when it
    is set in ``conf``).
    """
    check_spark()
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # executors run this interpreter, so they import the same personalize and numpy
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    from pyspark.sql import SparkSession

    if shuffle_partitions is None:
        m = re.fullmatch(r"local\[(\d+|\*)\]", master)
        cores = (os.cpu_count() or 2) if m and m.group(1) == "*" else int(m.group(1)) if m else 4
        shuffle_partitions = max(2, 2 * cores)
    settings: dict[str, Any] = {
        "spark.driver.memory": driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        # Parquet written by pandas keeps nanoseconds, which Spark cannot read as timestamps: read them as
        # nanoseconds since the epoch (personalize.spark.data converts them, truncating to microseconds)
        "spark.sql.legacy.parquet.nanosAsLong": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.sql.adaptive.enabled": "true",
    }
    settings.update({k: str(v) for k, v in (conf or {}).items()})
    builder = SparkSession.builder.master(master).appName(app_name)
    for k, v in settings.items():
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: a setup problem, not a bug
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SparkUnavailableError(f"Spark could not start ({master}): {first}") from None
    spark.sparkContext.setLogLevel(log_level)
    return spark


class JobProgress:
    """Report Spark's job progress while a block runs: ``with JobProgress(spark, say): ...``.

    A background thread polls the status tracker every ``interval`` seconds
    and calls ``say("stage 12 (groupBy at ...): 3/8 tasks")`` when it changes.
    """

    def __init__(self, spark, say: Callable[[str], None], *, interval: float = 1.0, label: str = "") -> None:
        self.spark = spark
        self.say = say
        self.interval = interval
        self.label = label
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = ""

    def _poll(self) -> None:
        tracker = self.spark.sparkContext.statusTracker()
        while not self._stop.wait(self.interval):
            try:
                parts = []
                for sid in sorted(tracker.getActiveStageIds()):
                    info = tracker.getStageInfo(sid)
                    if info is None:
                        continue
                    name = info.name.split(" at ")[0]
                    parts.append(f"stage {sid} ({name}): {info.numCompletedTasks}/{info.numTasks} tasks")
            except Exception:  # noqa: BLE001 - progress must never break the job it reports on
                continue
            msg = "; ".join(parts)
            if msg and msg != self._last:
                self._last = msg
                self.say(f"{self.label}{': ' if self.label else ''}{msg}")

    def __enter__(self) -> "JobProgress":
        self._thread = threading.Thread(target=self._poll, name="spark-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def elapsed(t0: float) -> float:
    return time.perf_counter() - t0
