//! More instances of buildfund on a test app's database: `buildfund serve` processes, each on a
//! port of its own, as a deployment runs replicas behind a load balancer.
use crate::app::{buildfund_bin, TestApp};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Running `serve` processes; [`Replicas::stop`] ends them with SIGTERM.
pub struct Replicas {
    children: Vec<Child>,
    /// `http://127.0.0.1:PORT` of each.
    pub urls: Vec<String>,
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl TestApp {
    /// Starts `n` `buildfund serve` processes on this app's database with the configuration
    /// `config` (without a `[server]` table: each gets one with a port of its own), named
    /// `instance0`, `instance1`, … (`HOSTNAME`), with this process's environment (the stand-ins'
    /// secrets) and logs to `replicaN.log` in the app's directory.
    pub fn start_replicas(&self, config: &str, n: usize) -> Replicas {
        let bin = buildfund_bin();
        let mut children = Vec::new();
        let mut urls = Vec::new();
        for i in 0..n {
            let port = free_port();
            let path = self.dir.path().join(format!("replica{i}.toml"));
            std::fs::write(
                &path,
                format!("{config}\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
            )
            .expect("write the replica's config");
            let log = std::fs::File::create(self.dir.path().join(format!("replica{i}.log")))
                .expect("the replica's log");
            children.push(
                Command::new(&bin)
                    .arg("serve")
                    .env("DATABASE_URL", &self.db_url)
                    .env("BUILDFUND_CONFIG", &path)
                    .env("HOSTNAME", format!("instance{i}"))
                    .env("BUILDFUND_LOG_FORMAT", "json")
                    .current_dir(self.dir.path())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start buildfund serve"),
            );
            urls.push(format!("http://127.0.0.1:{port}"));
        }
        Replicas { children, urls }
    }
}

impl Replicas {
    /// Waits (up to 60 s) until every replica answers `/readyz` with 200.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        for url in &self.urls {
            let mut ready = false;
            for _ in 0..600 {
                if client
                    .get(format!("{url}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
                {
                    ready = true;
                    break;
                }
                if let Some(status) = self
                    .children
                    .iter_mut()
                    .find_map(|c| c.try_wait().ok().flatten())
                {
                    panic!("a replica exited at start: {status}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(ready, "{url} never became ready");
        }
    }

    /// SIGTERM to each, then waits for them; each must exit cleanly.
    pub fn stop(self) {
        for c in &self.children {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for mut c in self.children {
            let status = c.wait().expect("wait for serve");
            assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
        }
    }
}
