//! `[server]` and `[database]`.
use super::walker::Walker;
use super::{DEFAULT_DATABASE_URL, DEFAULT_LISTEN};
use toml::Table;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: String,
    /// Largest accepted body of an ordinary JSON request.
    pub max_body_bytes: usize,
    /// Largest accepted build-step upload.
    pub max_ingest_bytes: usize,
    /// HTTP worker threads (default: the number of cores).
    pub workers: Option<usize>,
    /// Reverse proxies / load balancers whose `X-Forwarded-For` names the client (addresses or
    /// networks); empty: the TCP peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest accepted build-step record (an NDJSON line, a CSV row, a JSON array element).
    pub max_record_bytes: usize,
    /// A request body that sends nothing for this long is answered 408.
    pub body_idle_timeout_seconds: u64,
}

/// An IP network `address/prefix` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|n| *n <= max)?,
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map(V4).unwrap_or(V6(v6)),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

impl Walker {
    pub(super) fn server(&mut self, t: &Table) -> ServerConfig {
        let mut server = ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            max_body_bytes: 1 << 20,
            max_ingest_bytes: 512 << 20,
            workers: None,
            trusted_proxies: Vec::new(),
            max_record_bytes: 64 << 10,
            body_idle_timeout_seconds: 30,
        };
        let Some(s) = self.table(t, "server") else {
            return server;
        };
        self.unknown_keys(
            s,
            "server",
            &[
                "listen",
                "max_body_bytes",
                "max_ingest_bytes",
                "workers",
                "trusted_proxies",
                "max_record_bytes",
                "body_idle_timeout_seconds",
            ],
        );
        if let Some(listen) = self.string(s, "server", "listen") {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                self.problem(
                    "server.listen",
                    format!("{listen:?} is not an address such as \"127.0.0.1:8080\""),
                );
            }
            server.listen = listen;
        }
        if let Some(n) = self.integer(s, "server", "max_body_bytes", 1024, 1 << 30) {
            server.max_body_bytes = n as usize;
        }
        if let Some(n) = self.integer(s, "server", "max_ingest_bytes", 1024, 16 << 30) {
            server.max_ingest_bytes = n as usize;
        }
        if let Some(n) = self.integer(s, "server", "max_record_bytes", 1024, 16 << 20) {
            server.max_record_bytes = n as usize;
        }
        if let Some(n) = self.integer(s, "server", "body_idle_timeout_seconds", 1, 3600) {
            server.body_idle_timeout_seconds = n as u64;
        }
        server.workers = self
            .integer(s, "server", "workers", 1, 256)
            .map(|n| n as usize);
        for (i, p) in self
            .string_list(s, "server", "trusted_proxies")
            .iter()
            .enumerate()
        {
            match IpNet::parse(p) {
                Some(net) => server.trusted_proxies.push(net),
                None => self.problem(
                    format!("server.trusted_proxies[{i}]"),
                    format!("{p:?} is not an IP address or network such as \"10.0.0.0/8\""),
                ),
            }
        }
        server
    }

    pub(super) fn database(&mut self, t: &Table) -> DatabaseConfig {
        let mut db = DatabaseConfig {
            url: DEFAULT_DATABASE_URL.into(),
            max_connections: 10,
        };
        let Some(d) = self.table(t, "database") else {
            return db;
        };
        self.unknown_keys(d, "database", &["url", "max_connections"]);
        if let Some(url) = self.string(d, "database", "url") {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                self.problem(
                    "database.url",
                    "must start with sqlite:, postgres:// or postgresql://",
                );
            }
            db.url = url;
        }
        if let Some(n) = self.integer(d, "database", "max_connections", 1, 1000) {
            db.max_connections = n as u32;
        }
        db
    }
}
