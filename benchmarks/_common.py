"""Shared helpers for benchmark scripts: results as JSON, pass/fail against targets."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def peak_rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, **result}
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, path)
    return path


def finish(name: str, result: dict, checks: dict[str, bool]) -> None:
    """Record pass/fail of every target, write JSON, exit 1 if any target failed."""
    result["targets"] = {k: bool(v) for k, v in checks.items()}
    result["passed"] = all(checks.values())
    path = write_result(name, result)
    print(json.dumps(result, indent=2, default=str))
    print(f"wrote {path}", file=sys.stderr)
    if not result["passed"]:
        failed = [k for k, v in checks.items() if not v]
        print(f"FAILED targets: {failed}", file=sys.stderr)
        sys.exit(1)
