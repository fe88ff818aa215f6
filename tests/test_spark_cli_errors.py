"""``personalize spark`` without Java or pyspark: one line on stderr, exit 2 (no Spark needed to run these)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(args, env):
    return subprocess.run([sys.executable, "-m", "personalize", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("java_home, expected", [("/nonexistent-java", "JAVA_HOME=/nonexistent-java has no bin/java"),
                                                 (None, "Java not found")])
def test_missing_java_is_one_line_and_exit_2(tmp_path, java_home, expected):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    if java_home:
        env["JAVA_HOME"] = java_home
    else:
        env["PATH"] = str(tmp_path)  # no java on PATH
    r = _run(["spark", "train", str(tmp_path / "sales.parquet"), "--out", str(tmp_path / "m")], env)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"personalize: error: {lines[-1].split('error: ', 1)[1]}"] and expected in lines[0]


def test_missing_pyspark_is_one_line_and_exit_2(tmp_path):
    # a directory shadowing pyspark with a module that fails to import, as an environment without the extra
    fake = tmp_path / "pyspark"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named pyspark')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    r = _run(["spark", "score", str(tmp_path / "sales.parquet")], env)
    assert r.returncode == 2
    assert r.stderr.strip() == ("personalize: error: pyspark is not installed: install the Spark extra with "
                                "pip install 'personalize[spark]'")
