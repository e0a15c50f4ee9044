//! Every figure against an independent oracle: `tests/oracle/oracle.py` recomputes the cost
//! lines, the cost per job and the funds' spending, balance and runway from cost-model.md
//! alone (exact fractions, Python's standard library) over generated adversarial cases, and
//! checks the real `buildfund serve` to the cent, a fresh database per case.
use buildfund_tests::postgres_enabled;
use buildfund_tests::{buildfund_bin, create_postgres_database, drop_postgres_database};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Cases per database: about 40 s in a debug build.
const CASES: usize = 40;

/// `python3`, or `None` (skipped, said on stderr) outside CI; in CI its absence fails.
fn python3() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("python3"))
            .find(|p| p.is_file())
    });
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    match found {
        Some(p) => Some(p),
        None if ci => panic!("python3 is not on PATH, so the cost oracle cannot run"),
        None => {
            eprintln!("\n!!! SKIPPED: python3 is not on PATH, the cost oracle did not run !!!\n");
            None
        }
    }
}

/// Runs the oracle over `CASES` cases of seed 1 and fails with its report on a difference.
fn run_oracle(databases: Option<&Path>) {
    let Some(python) = python3() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut cmd = Command::new(python);
    cmd.arg(root.join("tests/oracle/oracle.py"))
        .args(["--cases", &CASES.to_string(), "--seed", "1", "--bin"])
        .arg(buildfund_bin())
        .env_remove("DATABASE_URL")
        .env_remove("BUILDFUND_CONFIG");
    if let Some(file) = databases {
        cmd.arg("--databases").arg(file);
    }
    let out = cmd.output().expect("run python3 tests/oracle/oracle.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "the service's figures differ from cost-model.md's:\n{report}"
    );
}

#[test]
fn figures_match_the_cost_model_on_sqlite() {
    run_oracle(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_match_the_cost_model_on_postgres() {
    if !postgres_enabled() {
        return;
    }
    let mut urls = Vec::with_capacity(CASES);
    for _ in 0..CASES {
        urls.push(
            create_postgres_database()
                .await
                .expect("create a test database"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("databases");
    std::fs::write(&file, urls.join("\n")).unwrap();
    let result = tokio::task::spawn_blocking(move || run_oracle(Some(&file))).await;
    for url in &urls {
        drop_postgres_database(url).await;
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}
