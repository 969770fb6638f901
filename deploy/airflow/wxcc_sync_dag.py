"""wxcc sync every 15 minutes, one Airflow task per org, retries mapped to wxcc's exit codes.

wxcc's exit codes (README, "Exit codes"; `wxcc --help`):
  0 ok; 4 partial and 75 lease held by another run -> retried (the next attempt continues);
  2 configuration and 3 re-authorization -> fail at once (a person must act; retrying cannot
  help); 1 failure and 6 stopped -> retried.

Orgs come from the WXCC_AIRFLOW_ORGS environment variable (comma-separated org ids, each an
`[[orgs]]` entry of wxcc.toml); the wxcc binary from WXCC_BIN (default `wxcc` on PATH).
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta

from airflow.exceptions import AirflowException, AirflowFailException

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task

WXCC_BIN = os.environ.get("WXCC_BIN", "wxcc")
ORGS = [o.strip() for o in os.environ.get(
    "WXCC_AIRFLOW_ORGS", "00000000-0000-4000-8000-000000000001").split(",") if o.strip()]

OK = 0
NO_RETRY = {2: "configuration error", 3: "re-authorization needed: run `wxcc auth login`"}
RETRY = {1: "failure", 4: "partial: left for the next attempt", 6: "stopped by a signal",
         75: "another run holds the org's lease"}


# Seconds wxcc gets after SIGTERM to commit what is complete and release the org's lease
# (it needs a few); only then is it killed.
GRACE_SECS = 60


def run_wxcc(args: list[str]) -> int:
    """Runs wxcc and returns its exit code. Interrupted (execution_timeout, a task cleared or
    marked failed), it gets SIGTERM and GRACE_SECS to stop cleanly: `subprocess.run` would
    SIGKILL it at once, leaving its lease held (the retries would exit 75 until it expires)
    and no run summary."""
    proc = subprocess.Popen(args)
    try:
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=GRACE_SECS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def outcome(code: int) -> None:
    """Turns a wxcc exit code into Airflow's success, retry or fail-fast."""
    if code == OK:
        return
    if code in NO_RETRY:
        raise AirflowFailException(f"wxcc exited {code} ({NO_RETRY[code]})")
    raise AirflowException(f"wxcc exited {code} ({RETRY.get(code, 'unknown exit code')})")


@dag(
    dag_id="wxcc_sync",
    schedule=timedelta(minutes=15),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        # On timeout wxcc gets SIGTERM (run_wxcc) and stops within seconds (exit 6), committing
        # what is complete; the next run continues. Timeout plus grace stays under the schedule.
        "execution_timeout": timedelta(minutes=13),
    },
    tags=["wxcc"],
)
def wxcc_sync():
    for org in ORGS:
        @task(task_id=f"sync_{org.replace('-', '_')}")
        def sync(org_id: str = org) -> None:
            outcome(run_wxcc([WXCC_BIN, "sync", "--log-format", "json", "--org-id", org_id]))

        sync()


wxcc_sync()
