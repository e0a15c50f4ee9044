//! Real `buildfund` processes that a crash test stops at a chosen point and kills with SIGKILL:
//! started with `BUILDFUND_TEST_PAUSE_AT=POINT` (see `buildfund_jobs::pause_points`), a process
//! writes `paused at POINT` on standard error when it gets there and waits; the test sees the
//! line and kills it, exactly there.
use crate::app::{buildfund_bin, TestApp};
use crate::replicas::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use buildfund_jobs::pause_points::ENV as PAUSE_AT;

/// A running `buildfund` process with its standard error in a file.
pub struct Process {
    child: Child,
    log: PathBuf,
    /// `http://127.0.0.1:PORT` of a `serve` process.
    pub url: String,
}

impl TestApp {
    /// `buildfund serve` on this app's database and configuration, on a port of its own, with
    /// `env` added (`PAUSE_AT`, say).
    pub fn serve_process(&self, env: &[(&str, &str)]) -> Process {
        let port = free_port();
        let config = std::fs::read_to_string(&self.config_path).expect("the app's config");
        let path = self.dir.path().join(format!("serve-{port}.toml"));
        std::fs::write(
            &path,
            format!("{config}\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
        )
        .expect("write the process's config");
        self.process(&["serve"], &path, env, format!("http://127.0.0.1:{port}"))
    }

    /// `buildfund ARGS` on this app's database and configuration, with `env` added.
    pub fn cli_process(&self, args: &[&str], env: &[(&str, &str)]) -> Process {
        self.process(args, &self.config_path.clone(), env, String::new())
    }

    fn process(
        &self,
        args: &[&str],
        config: &PathBuf,
        env: &[(&str, &str)],
        url: String,
    ) -> Process {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = self.dir.path().join(format!("process{n}.log"));
        let mut cmd = Command::new(buildfund_bin());
        cmd.args(args)
            .env("DATABASE_URL", &self.db_url)
            .env("BUILDFUND_CONFIG", config)
            .env("BUILDFUND_LOG_FORMAT", "text")
            .env_remove(PAUSE_AT)
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the process's log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Process {
            child: cmd.spawn().expect("start buildfund"),
            log,
            url,
        }
    }
}

impl Process {
    /// What the process wrote on standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 60 s) until a `serve` process answers `/readyz` with 200.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if client
                .get(format!("{}/readyz", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("buildfund exited at start ({status}): {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} never became ready: {}", self.url, self.log());
    }

    /// Waits (up to 60 s) until the process has stopped at `point`.
    pub async fn wait_paused_at(&mut self, point: &str) {
        let line = format!("paused at {point}");
        for _ in 0..600 {
            if self.log().contains(&line) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("buildfund exited ({status}) before {point}: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("buildfund never reached {point}: {}", self.log());
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("wait for the killed process");
        assert!(!status.success(), "the process was killed, not finished");
    }

    /// Waits for the process to end by itself: its exit status and standard error.
    pub async fn finish(mut self) -> (std::process::ExitStatus, String) {
        for _ in 0..1200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("buildfund did not finish within 120 s: {}", self.log());
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait for buildfund");
        assert!(
            status.success(),
            "buildfund exits cleanly on SIGTERM: {status}"
        );
    }
}
