//! A small SMTP server for tests and benchmarks: real TCP, a real SMTP dialogue (EHLO/HELO,
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT), every accepted message kept raw.
//! It can be told to refuse recipients (4xx or 5xx, until told to accept them again), to drop
//! the connection after N accepted messages and stay down (every open connection dropped at its
//! next command, every new one greeted with 421) until [`SmtpServer::recover`], or to only count
//! messages (benchmarks).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    accepted: usize,
    connections: usize,
    refused_connections: usize,
    keep: bool,
    drop_after: Option<usize>,
    down: bool,
    /// Sessions open now, and how many one client may have at once (a relay's limit).
    open_sessions: usize,
    session_limit: Option<usize>,
    /// Connections greeted with 421 for being over the limit.
    over_limit: usize,
    /// Recipient -> reply ("550 5.1.1 no such user").
    reject: HashMap<String, String>,
}

#[derive(Clone)]
pub struct SmtpServer {
    port: u16,
    state: Arc<Mutex<State>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl SmtpServer {
    /// Listens on 127.0.0.1 (a free port) and keeps every message.
    pub async fn start() -> SmtpServer {
        Self::start_with(true).await
    }

    /// A sink that only counts messages (for benchmarks).
    pub async fn counting() -> SmtpServer {
        Self::start_with(false).await
    }

    async fn start_with(keep: bool) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            keep,
            ..State::default()
        }));
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                s.lock().unwrap().open_sessions += 1;
                tokio::spawn(async move {
                    let _ = session(stream, s.clone()).await;
                    s.lock().unwrap().open_sessions -= 1;
                });
            }
        });
        SmtpServer {
            port,
            state,
            task: Arc::new(task),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn messages(&self) -> Vec<Received> {
        self.lock().messages.clone()
    }

    /// Messages accepted so far (kept or not).
    pub fn accepted(&self) -> usize {
        self.lock().accepted
    }

    /// Connections greeted with 421 while down.
    pub fn refused_connections(&self) -> usize {
        self.lock().refused_connections
    }

    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    /// Greet a connection beyond the `n`th open at once with 421, as relays that allow a client
    /// one connection do.
    pub fn limit_sessions(&self, n: usize) {
        self.lock().session_limit = Some(n);
    }

    /// Connections greeted with 421 for being over [`SmtpServer::limit_sessions`].
    pub fn over_limit(&self) -> usize {
        self.lock().over_limit
    }

    /// After `n` more accepted messages in all, drop the connection and stay down (the other
    /// open connections drop at their next command).
    pub fn drop_after(&self, n: usize) {
        let mut s = self.lock();
        s.drop_after = Some(s.accepted + n);
    }

    pub fn recover(&self) {
        let mut s = self.lock();
        s.down = false;
        s.drop_after = None;
    }

    /// Answer RCPT TO this address with `reply` (e.g. "550 5.1.1 no such user").
    pub fn reject(&self, address: &str, reply: &str) {
        self.lock()
            .reject
            .insert(address.to_lowercase(), reply.to_string());
    }

    /// Accept this address again (undoes [`SmtpServer::reject`]).
    pub fn unreject(&self, address: &str) {
        self.lock().reject.remove(&address.to_lowercase());
    }

    /// Waits until `n` messages were accepted (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let start = std::time::Instant::now();
        loop {
            if self.accepted() >= n {
                return self.messages();
            }
            assert!(
                start.elapsed() < timeout,
                "waited {timeout:?} for {n} messages, got {}",
                self.accepted()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn address(arg: &str) -> String {
    let a = arg.split_once(':').map(|(_, r)| r).unwrap_or(arg).trim();
    let a = a.split_whitespace().next().unwrap_or("");
    a.trim_start_matches('<')
        .trim_end_matches('>')
        .to_lowercase()
}

async fn session(stream: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    // Each reply goes at once, as a relay's does: without this, a reply written while an
    // earlier one is unacknowledged waits for the client's delayed ACK (Nagle's algorithm).
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let (down, over) = {
        let mut s = state.lock().unwrap();
        let over = s.session_limit.is_some_and(|n| s.open_sessions > n);
        if s.down {
            s.refused_connections += 1;
        } else if over {
            s.over_limit += 1;
        } else {
            s.connections += 1;
        }
        (s.down, over)
    };
    if down {
        write
            .write_all(b"421 4.3.2 sink is down, try later\r\n")
            .await?;
        return Ok(());
    }
    if over {
        write
            .write_all(b"421 4.7.0 too many connections from you, try later\r\n")
            .await?;
        return Ok(());
    }
    write
        .write_all(b"220 localhost test SMTP ready\r\n")
        .await?;
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        if state.lock().unwrap().down {
            return Ok(()); // down: every connection drops, not only the one that met it
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800".into()
        } else if upper.starts_with("HELO") {
            "250 localhost".into()
        } else if upper.starts_with("MAIL FROM") {
            from = address(&text);
            to.clear();
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO") {
            let rcpt = address(&text);
            let rejected = state.lock().unwrap().reject.get(&rcpt).cloned();
            match rejected {
                Some(reply) => reply,
                None => {
                    to.push(rcpt);
                    "250 2.1.5 Ok".into()
                }
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                "554 5.5.1 no valid recipients".into()
            } else {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if read.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(()); // dropped mid-message: not accepted
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    let body = if line.starts_with(b"..") {
                        &line[1..]
                    } else {
                        &line[..]
                    };
                    data.extend_from_slice(body);
                }
                let (n, drop_now) = {
                    let mut s = state.lock().unwrap();
                    if s.down {
                        return Ok(()); // went down while this message came: not accepted
                    }
                    s.accepted += 1;
                    let n = s.accepted;
                    if s.keep {
                        s.messages.push(Received {
                            from: from.clone(),
                            to: std::mem::take(&mut to),
                            data,
                        });
                    }
                    let drop_now = s.drop_after.is_some_and(|d| n >= d);
                    if drop_now {
                        s.down = true;
                    }
                    (n, drop_now)
                };
                to.clear();
                write
                    .write_all(format!("250 2.0.0 Ok: queued as M{n}\r\n").as_bytes())
                    .await?;
                if drop_now {
                    return Ok(()); // the connection drops right after the acknowledgement
                }
                continue;
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            "250 2.0.0 Ok".into()
        } else if upper == "NOOP" {
            "250 2.0.0 Ok".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 command not recognized".into()
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}
