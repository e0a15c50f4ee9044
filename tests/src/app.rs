//! [`TestApp`]: one running buildfund with its database, its configuration file, an HTTP client
//! with a typed helper per route, and the stand-ins its [`TestAppBuilder`] injected.
use crate::database::{self, create_postgres_database, drop_postgres_database};
use crate::opencollective::{Behaviour, OpenCollective};
use crate::proxy::Proxy;
use crate::recorder::{Recorder, Respond};
use crate::smtp::SmtpServer;
use crate::Backend;
use buildfund_api::startup::{Application, ServeOptions};
use buildfund_jobs::clock::Clock;
use buildfund_jobs::{db, Config};
use sea_orm::DatabaseConnection;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The environment variable the webhook receiver's `secret_env` names.
pub const WEBHOOK_SECRET_ENV: &str = "BF_TEST_WEBHOOK_SECRET";
/// The environment variable the Hydra stand-in's `password_env` names.
pub const HYDRA_PASSWORD_ENV: &str = "BF_TEST_HYDRA_PASSWORD";

/// How a test app is set up: its configuration text, and the stand-ins to start first (their
/// tables are appended to the configuration). `&str` and `String` convert into a builder with
/// no stand-ins.
pub struct TestAppBuilder {
    config: String,
    smtp: bool,
    opencollective: Option<Behaviour>,
    webhooks: Option<(String, Respond)>,
    hydra: Option<Respond>,
    redirected: bool,
    proxy: bool,
    clock: Option<Clock>,
}

impl From<&str> for TestAppBuilder {
    fn from(config: &str) -> Self {
        TestApp::builder(config)
    }
}

impl From<String> for TestAppBuilder {
    fn from(config: String) -> Self {
        TestApp::builder(config)
    }
}

impl From<&String> for TestAppBuilder {
    fn from(config: &String) -> Self {
        TestApp::builder(config.as_str())
    }
}

impl TestAppBuilder {
    /// A local SMTP server ([`TestApp::smtp`]) with `[smtp]` pointing at it.
    pub fn smtp(mut self) -> Self {
        self.smtp = true;
        self
    }

    /// The OpenCollective stand-in ([`TestApp::opencollective`]) acting as `behaviour`, with
    /// `[opencollective]` pointing at it.
    pub fn opencollective(mut self, behaviour: Behaviour) -> Self {
        self.opencollective = Some(behaviour);
        self
    }

    /// A webhook receiver ([`TestApp::webhooks`]) answering through `respond`, configured as
    /// `[[gate.webhooks]]` at `/hook` with `secret` in [`WEBHOOK_SECRET_ENV`].
    pub fn webhook_receiver(mut self, secret: &str, respond: Respond) -> Self {
        self.webhooks = Some((secret.to_string(), respond));
        self
    }

    /// A Hydra stand-in ([`TestApp::hydra`]) answering through `respond`, configured as
    /// `[hydra]` (user `buildfund`, password `pw` in [`HYDRA_PASSWORD_ENV`]).
    pub fn hydra(mut self, respond: Respond) -> Self {
        self.hydra = Some(respond);
        self
    }

    /// The Hydra or OpenCollective stand-in (whichever is set up) reached through a
    /// redirector ([`TestApp::redirector`]): the configured URL is the redirector's, which
    /// answers every request with a 307 to the same path on the stand-in, another origin.
    pub fn behind_redirector(mut self) -> Self {
        self.redirected = true;
        self
    }

    /// PostgreSQL only: the app reaches its database through a TCP proxy
    /// ([`TestApp::proxy`]) that can cut it off and bring it back.
    pub fn database_behind_proxy(mut self) -> Self {
        self.proxy = true;
        self
    }

    /// The server reads "now" from `clock` (keep a clone to set or advance it) instead of the
    /// system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Starts the stand-ins, then the app on `backend`.
    pub async fn start(self, backend: Backend) -> TestApp {
        let mut config = self.config;
        let smtp = match self.smtp {
            true => {
                let smtp = SmtpServer::start().await;
                config.push_str(&format!(
                    "\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"Build farm <fund@example.org>\"\nrate_per_second = 200\n",
                    smtp.port()
                ));
                Some(smtp)
            }
            false => None,
        };
        let opencollective = match self.opencollective {
            Some(behaviour) => {
                let oc = OpenCollective::start(behaviour).await;
                config.push_str(&oc.config());
                Some(oc)
            }
            None => None,
        };
        let webhooks = match self.webhooks {
            Some((secret, respond)) => {
                let receiver = Recorder::start(respond).await;
                std::env::set_var(WEBHOOK_SECRET_ENV, secret);
                config.push_str(&format!(
                    "\n[gate]\n[[gate.webhooks]]\nurl = \"{}/hook\"\nsecret_env = \"{WEBHOOK_SECRET_ENV}\"\n",
                    receiver.url()
                ));
                Some(receiver)
            }
            None => None,
        };
        let hydra = match self.hydra {
            Some(respond) => {
                let hydra = Recorder::start(respond).await;
                std::env::set_var(HYDRA_PASSWORD_ENV, "pw");
                config.push_str(&format!(
                    "\n[hydra]\ndatabase_url_env = \"HYDRA_DATABASE_URL\"\nurl = \"{}\"\nuser = \"buildfund\"\npassword_env = \"{HYDRA_PASSWORD_ENV}\"\n",
                    hydra.url()
                ));
                Some(hydra)
            }
            None => None,
        };
        let redirector = match self.redirected {
            true => {
                let (to, from_url) = match (&opencollective, &hydra) {
                    (Some(oc), None) => (
                        oc.url().trim_end_matches("/graphql/v2").to_string(),
                        oc.url().to_string(),
                    ),
                    (None, Some(hydra)) => (hydra.url().to_string(), hydra.url().to_string()),
                    _ => {
                        panic!("a redirector stands before exactly one of Hydra and OpenCollective")
                    }
                };
                let redirector = Recorder::redirector(&to).await;
                let via = from_url.replacen(&to, redirector.url(), 1);
                config = config.replace(&format!("\"{from_url}\""), &format!("\"{via}\""));
                Some(redirector)
            }
            false => None,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let (db_url, proxy) = match backend {
            Backend::Sqlite => {
                assert!(
                    !self.proxy,
                    "the database proxy stands before PostgreSQL only"
                );
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("test.sqlite").display()
                );
                (url, None)
            }
            Backend::Postgres => {
                let direct = create_postgres_database()
                    .await
                    .expect("cannot create a PostgreSQL test database");
                if self.proxy {
                    // postgres://user@host:port/db -> the same through the proxy
                    let (scheme_user, rest) = direct.split_once('@').expect("user@host");
                    let (host_port, db) = rest.split_once('/').expect("host/db");
                    let target = tokio::net::lookup_host(host_port)
                        .await
                        .expect("resolve the PostgreSQL server")
                        .next()
                        .expect("an address of the PostgreSQL server");
                    let proxy = Proxy::start(target).await;
                    let via_proxy = format!("{scheme_user}@127.0.0.1:{}/{db}", proxy.port);
                    (via_proxy, Some(proxy))
                } else {
                    (direct, None)
                }
            }
        };
        let clock = self.clock.unwrap_or_else(Clock::system);
        let mut app = TestApp::spawn(backend, &config, db_url, dir, clock).await;
        app.stand_ins = StandIns {
            smtp,
            opencollective,
            webhooks,
            hydra,
            redirector,
            proxy,
        };
        app
    }
}

#[derive(Default)]
struct StandIns {
    smtp: Option<SmtpServer>,
    opencollective: Option<OpenCollective>,
    webhooks: Option<Recorder>,
    hydra: Option<Recorder>,
    redirector: Option<Recorder>,
    proxy: Option<Proxy>,
}

pub struct TestApp {
    pub backend: Backend,
    pub address: String,
    pub port: u16,
    pub db: DatabaseConnection,
    pub db_url: String,
    pub config: Arc<Config>,
    /// The configuration text, also written to `config_path` for CLI runs.
    pub config_path: PathBuf,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The server's clock (the system's unless [`TestAppBuilder::clock`] gave one).
    pub clock: Clock,
    handle: actix_web::dev::ServerHandle,
    stand_ins: StandIns,
}

impl TestApp {
    /// The one way to set up a test app: `config` plus the stand-ins asked for.
    pub fn builder(config: impl Into<String>) -> TestAppBuilder {
        TestAppBuilder {
            config: config.into(),
            smtp: false,
            opencollective: None,
            webhooks: None,
            hydra: None,
            redirected: false,
            proxy: false,
            clock: None,
        }
    }

    /// Another app on an existing database (a copy's target, say), with `config_text` and
    /// `clock`, in a directory of its own.
    pub async fn start_on(
        backend: Backend,
        config_text: &str,
        db_url: &str,
        clock: Clock,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        TestApp::spawn(backend, config_text, db_url.to_string(), dir, clock).await
    }

    /// Starts the app on `db_url` with the given configuration file text.
    async fn spawn(
        backend: Backend,
        config_text: &str,
        db_url: String,
        dir: tempfile::TempDir,
        clock: Clock,
    ) -> TestApp {
        let config_path = dir.path().join("buildfund.toml");
        std::fs::write(&config_path, config_text).expect("write config");
        let mut config = Config::parse(config_text, "test config").expect("test config is valid");
        config.database.url = db_url.clone();
        config.server.listen = "127.0.0.1:0".into();
        config.server.workers = Some(2);
        let conn = db::connect(&config).await.expect("connect");
        let first_run = db::prepare(&conn, &config, clock.now())
            .await
            .expect("migrate");
        // As `buildfund serve` does: without a configured ledger_start, the books begin at the
        // month of the first run recorded in the database.
        config.start_books_at_first_run(first_run.at);
        let config = Arc::new(config);
        let options = ServeOptions {
            handle_signals: false,
            shutdown_timeout: Duration::from_secs(1),
        };
        let secrets = Arc::new(buildfund_jobs::config::Secrets::from_env(&config));
        let app = Application::build_with_clock(
            config.clone(),
            secrets,
            conn.clone(),
            options,
            clock.clone(),
        )
        .expect("build app");
        let port = app.port();
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            backend,
            address: format!("http://127.0.0.1:{port}"),
            port,
            db: conn,
            db_url,
            config,
            config_path,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            dir,
            clock,
            handle,
            stand_ins: StandIns::default(),
        }
    }

    /// The SMTP server of [`TestAppBuilder::smtp`].
    pub fn smtp(&self) -> &SmtpServer {
        self.stand_ins
            .smtp
            .as_ref()
            .expect("no SMTP server: set it up with TestApp::builder(…).smtp()")
    }

    /// The OpenCollective stand-in of [`TestAppBuilder::opencollective`].
    pub fn opencollective(&self) -> &OpenCollective {
        self.stand_ins.opencollective.as_ref().expect(
            "no OpenCollective stand-in: set it up with TestApp::builder(…).opencollective(…)",
        )
    }

    /// The webhook receiver of [`TestAppBuilder::webhook_receiver`].
    pub fn webhooks(&self) -> &Recorder {
        self.stand_ins
            .webhooks
            .as_ref()
            .expect("no webhook receiver: set it up with TestApp::builder(…).webhook_receiver(…)")
    }

    /// The Hydra stand-in of [`TestAppBuilder::hydra`].
    pub fn hydra(&self) -> &Recorder {
        self.stand_ins
            .hydra
            .as_ref()
            .expect("no Hydra stand-in: set it up with TestApp::builder(…).hydra(…)")
    }

    /// The redirector of [`TestAppBuilder::behind_redirector`].
    pub fn redirector(&self) -> &Recorder {
        self.stand_ins
            .redirector
            .as_ref()
            .expect("no redirector: set it up with TestApp::builder(…).behind_redirector()")
    }

    /// The database proxy of [`TestAppBuilder::database_behind_proxy`].
    pub fn proxy(&self) -> &Proxy {
        self.stand_ins
            .proxy
            .as_ref()
            .expect("no database proxy: set it up with TestApp::builder(…).database_behind_proxy()")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// `GET path` with one request header (conditional requests, client addresses, …).
    pub async fn get_with_header(&self, path: &str, name: &str, value: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(name, value)
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// `POST path` with a JSON body and a bearer token: the status and the JSON answer (null
    /// when the answer is not JSON).
    pub async fn post_json(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("POST");
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    /// `POST /api/v1/build-steps` with `body` of `content_type`.
    pub async fn post_build_steps(
        &self,
        token: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/build-steps"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST build steps")
    }

    /// Ingests `steps` as NDJSON with a fresh ingest token and checks the 200.
    pub async fn ingest_steps(&self, steps: &[Value]) {
        let body: String = steps.iter().map(|s| format!("{s}\n")).collect();
        let token = self.token("ingest").await;
        let res = self
            .post_build_steps(&token, "application/x-ndjson", body)
            .await;
        assert_eq!(
            res.status(),
            200,
            "{}",
            res.text().await.unwrap_or_default()
        );
    }

    /// `GET /api/v1/costs?month=MONTH` (and `&at=AT`): the JSON answer, checked to be a 200.
    pub async fn get_costs(&self, month: &str, at: Option<&str>) -> Value {
        self.get_json(&with_at(format!("/api/v1/costs?month={month}"), at))
            .await
    }

    /// `GET /api/v1/funds?month=MONTH` (and `&at=AT`): the JSON answer, checked to be a 200.
    pub async fn get_funds(&self, month: &str, at: Option<&str>) -> Value {
        self.get_json(&with_at(format!("/api/v1/funds?month={month}"), at))
            .await
    }

    /// `GET /api/v1/donations?month=MONTH`: the JSON answer, checked to be a 200.
    pub async fn get_donations(&self, month: &str) -> Value {
        self.get_json(&format!("/api/v1/donations?month={month}"))
            .await
    }

    /// `GET /api/v1/gate/PATH` (a jobset `project/jobset`, with a query if any): the answer,
    /// checked to be a 200.
    pub async fn get_gate(&self, path: &str) -> Value {
        self.get_json(&format!("/api/v1/gate/{path}")).await
    }

    /// `POST /api/v1/gate/pools/POOL/pause` with `body` (its `reason`).
    pub async fn pause(&self, pool: &str, token: &str, body: Value) -> (u16, Value) {
        self.gate_action(pool, "pause", token, body).await
    }

    /// `POST /api/v1/gate/pools/POOL/override` with `body` (its `reason`, `until`).
    pub async fn override_gate(&self, pool: &str, token: &str, body: Value) -> (u16, Value) {
        self.gate_action(pool, "override", token, body).await
    }

    /// `POST /api/v1/gate/pools/POOL/lift` with `body` (its `reason`).
    pub async fn lift(&self, pool: &str, token: &str, body: Value) -> (u16, Value) {
        self.gate_action(pool, "lift", token, body).await
    }

    async fn gate_action(
        &self,
        pool: &str,
        action: &str,
        token: &str,
        body: Value,
    ) -> (u16, Value) {
        self.post_json(&format!("/api/v1/gate/pools/{pool}/{action}"), token, body)
            .await
    }

    /// `POST /api/v1/donations` with `body`, with a bearer token when given.
    pub async fn post_donation(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut r = self.client.post(self.url("/api/v1/donations")).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("POST donation")
    }

    /// `POST /subscribe` as the funding page's form sends it, optionally through a proxy that
    /// adds `X-Forwarded-For: FORWARDED_FOR`.
    pub async fn post_subscribe(
        &self,
        email: &str,
        forwarded_for: Option<&str>,
    ) -> reqwest::Response {
        let mut r = self
            .client
            .post(self.url("/subscribe"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("email={}", form_encode(email)));
        if let Some(f) = forwarded_for {
            r = r.header("x-forwarded-for", f);
        }
        r.send().await.expect("POST subscribe")
    }

    async fn get_json(&self, path: &str) -> Value {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.expect("a JSON answer")
    }

    /// `GET /metrics`, checked to be a 200: every sample.
    pub async fn get_metrics(&self) -> Vec<crate::prometheus::Sample> {
        let res = self.get("/metrics").await;
        assert_eq!(res.status(), 200, "GET /metrics");
        crate::prometheus::parse(&res.text().await.expect("a text answer"))
    }

    /// `POST /webhooks/opencollective/{token}` with a JSON `body` as OpenCollective sends it.
    pub async fn post_opencollective_webhook(
        &self,
        token: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/webhooks/opencollective/{token}")))
            .json(body)
            .send()
            .await
            .expect("POST webhook")
    }

    /// `POST /api/v1/jobs/{job}/run` with an admin token: the run's record as JSON.
    pub async fn run_job(&self, job: &str, admin: &str) -> serde_json::Value {
        let res = self
            .client
            .post(self.url(&format!("/api/v1/jobs/{job}/run")))
            .bearer_auth(admin)
            .send()
            .await
            .expect("POST run");
        assert_eq!(res.status(), 200, "running {job}");
        res.json().await.expect("a JSON run record")
    }

    /// A fresh token of the given scope, created as `buildfund token create` would.
    pub async fn token(&self, scope: &str) -> String {
        let scope = scope.parse().expect("scope");
        let (secret, _) = buildfund_jobs::api_tokens::create(
            &self.db,
            scope,
            &format!("test {scope}"),
            self.clock.now(),
        )
        .await
        .expect("create token");
        secret
    }

    /// Runs the `buildfund` binary against this app's database and config file.
    pub fn cli(&self, args: &[&str]) -> Output {
        run_cli(
            args,
            self.dir.path(),
            &[
                ("DATABASE_URL", self.db_url.as_str()),
                (
                    "BUILDFUND_CONFIG",
                    self.config_path.to_str().expect("utf-8 path"),
                ),
            ],
        )
    }

    /// [`TestApp::cli`] that must succeed: its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "buildfund {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Makes the app's database unreachable without stopping the shared server: SQLite by
    /// closing the connection pool the server shares; PostgreSQL by refusing new connections to
    /// the test database and terminating the open ones.
    pub async fn take_database_away(&self) {
        match self.backend {
            Backend::Sqlite => {
                self.db.clone().close().await.expect("close the pool");
            }
            Backend::Postgres => database::refuse_connections(&self.db_url)
                .await
                .expect("refuse connections to the test database"),
        }
    }

    pub(crate) async fn stop(self) {
        self.handle.stop(true).await;
        self.db.close().await.ok();
        if self.backend == Backend::Postgres {
            drop_postgres_database(&self.db_url).await;
        }
        let s = self.stand_ins;
        if let Some(oc) = s.opencollective {
            oc.stop().await;
        }
        if let Some(r) = s.webhooks {
            r.stop().await;
        }
        if let Some(r) = s.hydra {
            r.stop().await;
        }
        if let Some(r) = s.redirector {
            r.stop().await;
        }
    }
}

fn with_at(mut path: String, at: Option<&str>) -> String {
    if let Some(at) = at {
        path.push_str("&at=");
        path.push_str(at);
    }
    path
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `buildfund` binary of this workspace, built on first use, or the one `BUILDFUND_BIN`
/// names.
pub fn buildfund_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // A binary given by path (a benchmark run from a copy, or another commit's build).
        if let Some(bin) = std::env::var_os("BUILDFUND_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<test> -> target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        // Cargo gives the test process its package's variables (CARGO_MANIFEST_DIR,
        // CARGO_PKG_NAME…). Build scripts that read them (ring's) would find them changed
        // from the outer build and rebuild, and everything above them with them (rustls,
        // sqlx, sea-orm): this build runs in the environment the outer one had.
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(set_by_cargo_for_the_test) {
                cmd.env_remove(name);
            }
        }
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "buildfund-api",
            "--bin",
            "buildfund",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the buildfund binary failed");
        profile_dir.join("buildfund")
    })
    .clone()
}

/// Whether cargo sets variable `name` for the process of a test it runs (not a setting of the
/// user's such as `CARGO_HOME` or `CARGO_TARGET_DIR`).
fn set_by_cargo_for_the_test(name: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || matches!(
            name,
            "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "CARGO_RUSTC_CURRENT_DIR" | "OUT_DIR"
        )
}

/// Runs `buildfund ARGS` in `cwd` with extra environment, without inheriting a
/// `DATABASE_URL` or `BUILDFUND_CONFIG` from the test's own environment.
pub fn run_cli(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(buildfund_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("BUILDFUND_CONFIG")
        .env("BUILDFUND_LOG_FORMAT", "text");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run buildfund")
}
