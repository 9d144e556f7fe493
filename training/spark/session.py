"""One place that builds the SparkSession for the command-line entry points and the tests."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession


def get_spark(master: str | None = None, app_name: str = "xray-spark") -> SparkSession:
    """Under spark-submit the cluster's master wins; plain `python -m` defaults to local[*]."""
    # Python workers must be this interpreter (the venv with torch), not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    return (
        builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
