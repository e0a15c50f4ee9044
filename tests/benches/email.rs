//! Benchmark of the monthly email: 10,000 confirmed subscribers sent through the outbox by the
//! real binary (`buildfund report send`, release build) to a local SMTP sink over TCP
//! (tests/src/smtp.rs, counting only), with the sender's wall time and peak memory (VmHWM), a
//! second send (nothing new), and baselines to the same sink in the same run: a minimal client
//! that speaks SMTP command by command as Python's `smtplib` does (MAIL, RCPT, DATA and the
//! data, each waiting for its reply), Python's `smtplib` itself when `python3` is on `PATH`,
//! and `Mailer` alone (each message rendered and sent, no database, no outbox).
//!
//! `cargo bench -p buildfund-tests --bench email` (SQLite in a temporary directory), or with
//! `BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres` (a scratch database on that
//! server, `buildfund_tests::database`, dropped at the end).
//! `BENCH_SUBSCRIBERS` changes the count (default 10000). `BENCH_BEFORE=/path/to/buildfund`
//! also times that binary's `report send` (the month's rows deleted between sends), alternated
//! with this build's `BENCH_ROUNDS` times (default 1), for a before/after in the same run.
use buildfund_entity::subscribers;
use buildfund_jobs::calendar::Month;
use buildfund_jobs::email::outbox::{report_message, unsubscribe_url};
use buildfund_jobs::email::{EmailKey, Mailer};
use buildfund_jobs::{db, Config};
use buildfund_tests::buildfund_bin;
use buildfund_tests::database::BenchDatabase;
use buildfund_tests::smtp::SmtpServer;
use chrono::Utc;
use sea_orm::{DatabaseConnection, EntityTrait, Set};
use std::time::{Duration, Instant};

const BOOKS: &str = r#"
currency = "EUR"
ledger_start = "2026-09-01"
[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "500.00"
[[machines]]
name = "build03"
slots = 2
monthly = "300.00"
"#;

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs the binary, returning (wall time, peak memory in KiB, stdout).
fn timed(
    bin: &std::path::Path,
    args: &[&str],
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Duration, u64, String) {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("BUILDFUND_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("start buildfund");
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(k);
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "buildfund {args:?} failed");
    (
        elapsed,
        peak,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A minimal SMTP client: one connection, TCP_NODELAY, each command (MAIL, RCPT, DATA) written
/// and its reply read before the next, as Python's `smtplib` does, then each message's data and
/// its final dot in one write.
async fn raw_client(port: u16, n: usize, body: &[u8]) -> Duration {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            r.read_line(&mut line).await.unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }
    reply(&mut r).await;
    w.write_all(b"EHLO bench\r\n").await.unwrap();
    reply(&mut r).await;
    let mut data = body.to_vec();
    data.extend_from_slice(b"\r\n.\r\n");
    let start = Instant::now();
    for i in 0..n {
        w.write_all(b"MAIL FROM:<fund@example.org>\r\n")
            .await
            .unwrap();
        reply(&mut r).await;
        w.write_all(format!("RCPT TO:<raw{i}@example.org>\r\n").as_bytes())
            .await
            .unwrap();
        reply(&mut r).await;
        w.write_all(b"DATA\r\n").await.unwrap();
        reply(&mut r).await;
        w.write_all(&data).await.unwrap();
        assert!(reply(&mut r).await.starts_with("250"));
    }
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let _ = buildfund_bin();
    let sink = SmtpServer::counting().await;
    let dir = tempfile::tempdir().unwrap();
    let database = BenchDatabase::create()
        .await
        .expect("a scratch database on BENCH_DATABASE_URL");
    let db_url = match &database {
        Some(database) => database.url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.sqlite").display()
        ),
    };
    let config_text = format!(
        "{BOOKS}\n[database]\nurl = \"{db_url}\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"Build farm <fund@example.org>\"\nrate_per_second = 10000\n",
        sink.port()
    );
    let config_path = dir.path().join("buildfund.toml");
    std::fs::write(&config_path, &config_text).unwrap();
    let config = Config::parse(&config_text, "bench").unwrap();
    let conn = db::connect(&config).await.unwrap();
    db::prepare(&conn, &config, buildfund_jobs::clock::Clock::system().now())
        .await
        .unwrap();

    let now = Utc::now();
    let rows: Vec<subscribers::ActiveModel> = (0..n)
        .map(|i| subscribers::ActiveModel {
            email: Set(format!("sponsor{i:05}@example.org")),
            status: Set(buildfund_entity::subscribers::SubscriberStatus::Confirmed),
            created_at: Set(now),
            confirmed_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(1000) {
        subscribers::Entity::insert_many(chunk.to_vec())
            .exec(&conn)
            .await
            .unwrap();
    }
    let month = Month::parse("2026-10").unwrap();
    eprintln!("{n} subscribers stored");

    // Baseline: render and send the same messages with lettre alone (no database, no outbox).
    let secrets = buildfund_jobs::config::Secrets::from_env(&config);
    let mailer = Mailer::new(config.smtp.as_ref().unwrap(), &secrets).unwrap();
    let key = EmailKey::load(&conn, &secrets, now).await.unwrap();
    let report = buildfund_jobs::report::month_report(&conn, &config, month, now)
        .await
        .unwrap();
    let start = Instant::now();
    let mut size = 0;
    let mut raw_body = Vec::new();
    for i in 0..n {
        let to = format!("sponsor{i:05}@example.org");
        let unsubscribe = unsubscribe_url(&config, &key, i as i64 + 1, &to);
        let m = report_message(
            &mailer,
            &config,
            &report,
            &to,
            &unsubscribe,
            format!("<baseline.{i}@example.org>"),
        )
        .unwrap();
        if i == 0 {
            raw_body = m.formatted();
            size = raw_body.len();
        }
        tokio::time::timeout(Duration::from_secs(30), mailer.send(m))
            .await
            .unwrap_or_else(|_| panic!("message {i}: no answer from the sink in 30 s"))
            .unwrap();
        if (i + 1) % 1000 == 0 {
            eprintln!("baseline: {} sent", i + 1);
        }
    }
    let baseline = start.elapsed();
    assert_eq!(sink.accepted(), n);
    drop(mailer);
    // (The report's lines are short and never start with a dot: no stuffing needed.)
    let canned = raw_body.strip_suffix(b"\r\n").unwrap_or(&raw_body).to_vec();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let expected = std::cell::Cell::new(n);
    let send = |label: &str, bin: &std::path::Path, database: &DatabaseConnection| {
        let env = [("BUILDFUND_CONFIG", config_path.to_str().unwrap())];
        let args = ["report", "send", "--month", "2026-10"];
        let (first, peak, out) = timed(bin, &args, dir.path(), &env);
        assert!(out.contains(&format!("{n} sent")), "{out}");
        expected.set(expected.get() + n);
        assert_eq!(
            sink.accepted(),
            expected.get(),
            "every subscriber got one message"
        );
        let (second, _, out2) = timed(bin, &args, dir.path(), &env);
        assert!(out2.contains("0 messages queued now; 0 sent"), "{out2}");
        assert_eq!(
            sink.accepted(),
            expected.get(),
            "the second send sent nothing"
        );
        println!(
            "{label}: buildfund report send (outbox, {n} rows): {:.2} s, {:.0} messages/s, peak memory {:.1} MiB; again (nothing new): {:.2} s",
            first.as_secs_f64(),
            rate(first),
            peak as f64 / 1024.0,
            second.as_secs_f64(),
        );
        let _ = database;
        first
    };
    println!(
        "subscribers: {n}; message size {size} bytes; database {}",
        db::backend_name(&conn)
    );
    println!(
        "baseline, Mailer alone (render + send each message, one kept connection, no database): {:.2} s, {:.0} messages/s",
        baseline.as_secs_f64(),
        rate(baseline)
    );
    let before = std::env::var_os("BENCH_BEFORE").map(std::path::PathBuf::from);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for round in 1..=rounds {
        let minimal = raw_client(sink.port(), n, &canned).await;
        expected.set(expected.get() + n);
        assert_eq!(sink.accepted(), expected.get());
        println!(
            "round {round}: a minimal client, command by command (as smtplib; TCP_NODELAY): {:.2} s, {:.0} messages/s",
            minimal.as_secs_f64(),
            rate(minimal)
        );
        if let Some(smtplib) = smtplib(sink.port(), n, &canned, dir.path()) {
            expected.set(expected.get() + n);
            assert_eq!(sink.accepted(), expected.get());
            println!(
                "round {round}: Python's smtplib (sendmail, one connection): {:.2} s, {:.0} messages/s",
                smtplib.as_secs_f64(),
                rate(smtplib)
            );
        }
        let mut outbox = Vec::new();
        if let Some(before) = &before {
            let t = send(&format!("round {round}: before"), before, &conn);
            clear_outbox(&conn).await;
            outbox.push(("before", t));
        }
        let t = send(
            &format!("round {round}: this build"),
            &buildfund_bin(),
            &conn,
        );
        clear_outbox(&conn).await;
        outbox.push(("this build", t));
        for (label, t) in outbox {
            println!(
                "round {round}: {label}: outbox / minimal client {:.3}x",
                minimal.as_secs_f64() / t.as_secs_f64(),
            );
        }
    }
    conn.close().await.unwrap();
    if let Some(database) = database {
        database.drop().await.unwrap();
    }
}

/// Deletes the outbox's rows, so the next `report send` sends the month again.
async fn clear_outbox(conn: &DatabaseConnection) {
    buildfund_entity::email_outbox::Entity::delete_many()
        .exec(conn)
        .await
        .unwrap();
}

/// Python's `smtplib` sending the canned message `n` times over one connection to the sink,
/// timed by the script around its loop; `None` without `python3`.
fn smtplib(port: u16, n: usize, body: &[u8], dir: &std::path::Path) -> Option<Duration> {
    let path = dir.join("canned.eml");
    std::fs::write(&path, body).unwrap();
    let script = r#"
import smtplib, sys, time
port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = open(path, "rb").read()
s = smtplib.SMTP("127.0.0.1", port)
s.ehlo("bench")
start = time.perf_counter()
for i in range(n):
    s.sendmail("fund@example.org", ["py%d@example.org" % i], body)
print(time.perf_counter() - start)
s.quit()
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string(), &n.to_string()])
        .arg(&path)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("smtplib: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}
