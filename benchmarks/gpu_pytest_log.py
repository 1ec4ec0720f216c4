"""A pytest plugin for benchmarks/gpu_check.sh: one JSON line per test outcome, written as it happens.

The check gives the test run a time budget and kills it when the budget is spent; pytest's own
reports (``--junitxml``) are written only at the end and would be lost with everything that had
finished. Each line is flushed at once, so a run cut off still tells which tests passed, failed,
timed out (pytest-timeout's per-test limit) or never ran. Loaded with ``-p benchmarks.gpu_pytest_log``;
writes to the file named by ``GPU_CHECK_TESTS_LOG`` and does nothing without it. Under pytest-xdist
only the controller writes, since it receives every worker's reports.
"""

from __future__ import annotations

import json
import os

import pytest

LOG_VARIABLE = "GPU_CHECK_TESTS_LOG"
REPR_CHARS = 3000


def _write(record: dict) -> None:
    path = os.environ.get(LOG_VARIABLE)
    if not path or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


def pytest_collection_finish(session: pytest.Session) -> None:
    _write({"event": "collected", "count": len(session.items)})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:
    _write({"event": "collected", "count": len(ids), "worker": getattr(node, "gateway", None) and node.gateway.id})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _write({"event": "test", "nodeid": report.nodeid, "when": "collect", "outcome": "error",
                "duration": 0.0, "longrepr": str(report.longrepr)[-REPR_CHARS:]})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # A test's verdict: its call, or a setup that failed or skipped it, or a teardown that failed.
    if not (report.when == "call" or report.outcome != "passed"):
        return
    text = report.longreprtext if report.outcome != "passed" else ""
    _write({
        "event": "test", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
        "duration": round(report.duration, 3), "timeout": "Timeout" in text and report.failed,
        "longrepr": text[-REPR_CHARS:],
    })
