//! The deployment examples in `deploy/` pass their tools' own validation: Kubernetes schemas
//! (`kubernetes-validate`, offline, strict), `systemd-analyze verify`, and Airflow's DagBag.

use std::path::{Path, PathBuf};

use crate::s3::test_python;
use crate::util::{run_ok, text};

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

/// A tool that is missing: skipped locally with a message, a failure in CI.
fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing (scripts/test.sh installs it)");
    }
    eprintln!("skipping: {what} is missing (scripts/test.sh installs it)");
}

#[tokio::test]
async fn the_kubernetes_cronjob_validates_against_the_kubernetes_schemas() {
    let Some(python) = test_python() else { return };
    let validate = Path::new(&python).with_file_name("kubernetes-validate");
    if !validate.exists() {
        return missing("kubernetes-validate");
    }
    let manifest = deploy("kubernetes/cronjob.yaml");
    run_ok(
        tokio::process::Command::new(&validate)
            .arg("--strict")
            .arg(&manifest),
    )
    .await;
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    for needle in [
        "concurrencyPolicy: Forbid",
        "terminationGracePeriodSeconds: 60",
        "secretKeyRef",
        "emptyDir",
        "values: [2, 3]",
    ] {
        assert!(yaml.contains(needle), "{needle} missing");
    }
    // `wxcc listen`: one replica (its queue volume is ReadWriteOnce) behind a TLS Ingress.
    let listen = deploy("kubernetes/listen.yaml");
    run_ok(
        tokio::process::Command::new(&validate)
            .arg("--strict")
            .arg(&listen),
    )
    .await;
    let yaml = std::fs::read_to_string(&listen).unwrap();
    for needle in [
        "kind: Deployment",
        "type: Recreate",
        "replicas: 1",
        "claimName: wxcc-listen-queue",
        "key: WXCC_WEBHOOK_SECRET",
        "path: /healthz",
        "kind: Ingress",
        "secretName: wxcc-listen-tls",
    ] {
        assert!(yaml.contains(needle), "{needle} missing");
    }
}

#[tokio::test]
async fn the_systemd_units_pass_systemd_analyze_verify() {
    let Ok(analyze) = which("systemd-analyze") else {
        return missing("systemd-analyze (Debian: systemd)");
    };
    // verify checks that ExecStart exists: point the copies at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in [
        "wxcc-sync.service",
        "wxcc-sync.timer",
        "wxcc-listen.service",
    ] {
        let body = std::fs::read_to_string(deploy(&format!("systemd/{name}")))
            .unwrap()
            .replace("/usr/local/bin/wxcc", env!("CARGO_BIN_EXE_wxcc"));
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        units.push(path);
    }
    let out = tokio::process::Command::new(analyze)
        .arg("verify")
        .args(&units)
        .output()
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // verify exits 0 on most mistakes and only warns ("Failed to parse ..., ignoring").
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("wxcc-sync") || l.contains("wxcc-listen"))
        .collect();
    assert!(ours.is_empty(), "{stderr}");
}

/// Airflow's own loader when `~/.cache/wxcc-airflow-venv` (or `WXCC_TEST_AIRFLOW_PYTHON`) has
/// Airflow; otherwise the DAG is compiled and its exit-code mapping read from the syntax tree.
#[tokio::test]
async fn the_airflow_dag_imports_with_one_task_per_org_and_maps_exit_codes() {
    let dag = deploy("airflow/wxcc_sync_dag.py");
    let airflow_python = std::env::var("WXCC_TEST_AIRFLOW_PYTHON").ok().or_else(|| {
        let p =
            PathBuf::from(std::env::var("HOME").ok()?).join(".cache/wxcc-airflow-venv/bin/python");
        p.exists().then(|| p.display().to_string())
    });
    let has_airflow = match &airflow_python {
        Some(p) => tokio::process::Command::new(p)
            .args(["-c", "import airflow"])
            .output()
            .await
            .is_ok_and(|o| o.status.success()),
        None => false,
    };
    if has_airflow {
        let home = tempfile::tempdir().unwrap();
        let script = r#"
import sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
try:
    bag = DagBag(dag_folder=sys.argv[1], include_examples=False)  # Airflow 2
except TypeError:
    bag = DagBag(dag_folder=sys.argv[1])  # Airflow 3: examples are never included
assert not bag.import_errors, bag.import_errors
dag = bag.dags["wxcc_sync"]
ids = sorted(t.task_id for t in dag.tasks)
assert ids == ["sync_org_a", "sync_org_b"], ids
sys.path.insert(0, sys.argv[2])
import wxcc_sync_dag as d
from airflow.exceptions import AirflowException, AirflowFailException
d.outcome(0)
for code, fast in [(2, True), (3, True), (4, False), (75, False), (1, False)]:
    try:
        d.outcome(code)
        raise SystemExit(f"{code} passed")
    except AirflowFailException:
        assert fast, code
    except AirflowException:
        assert not fast, code
# Interrupted (as by execution_timeout), wxcc gets SIGTERM and time to stop, not SIGKILL.
import signal, tempfile, os
with tempfile.TemporaryDirectory() as t:
    marker, fake = os.path.join(t, "got"), os.path.join(t, "wxcc")
    with open(fake, "w") as f:
        f.write('#!/bin/sh\n' "trap 'echo TERM > \"$1\"; exit 6' TERM\n"
                'touch "$1.started"\nwhile :; do sleep 0.05; done\n')
    os.chmod(fake, 0o755)
    def timeout(*_):
        raise TimeoutError("execution_timeout")
    signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        d.run_wxcc([fake, marker])
        raise SystemExit("run_wxcc returned")
    except TimeoutError:
        pass
    assert os.path.exists(marker + ".started")
    assert open(marker).read().strip() == "TERM", "wxcc was not given SIGTERM"
print("dagbag ok")
"#;
        run_ok(
            tokio::process::Command::new(airflow_python.unwrap())
                .args(["-c", script])
                .arg(&dag)
                .arg(dag.parent().unwrap())
                .env("AIRFLOW_HOME", home.path())
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env("WXCC_AIRFLOW_ORGS", "org-a,org-b"),
        )
        .await;
        return;
    }
    eprintln!("note: Airflow is not installed; checking the DAG with py_compile and its AST");
    let Some(python) = test_python() else { return };
    let script = r#"
import ast, os, py_compile, sys, tempfile
with tempfile.TemporaryDirectory() as d:  # no __pycache__ in the source tree
    py_compile.compile(sys.argv[1], cfile=os.path.join(d, "dag.pyc"), doraise=True)
tree = ast.parse(open(sys.argv[1]).read())
names = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
         if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
         and n.targets[0].id in ("NO_RETRY", "RETRY")}
assert set(names["NO_RETRY"]) == {2, 3}, names
assert {4, 75} <= set(names["RETRY"]), names
print("ast ok")
"#;
    run_ok(
        tokio::process::Command::new(python)
            .args(["-c", script])
            .arg(&dag),
    )
    .await;
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .ok_or(())
}
