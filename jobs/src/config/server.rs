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

/// An IP network `address/prefix` (a bare address is a /32 or /128), parsed by `ipnet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet(pub ipnet::IpNet);

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let s = s.trim();
        let net = match s.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) => s.parse::<std::net::IpAddr>().ok()?.into(),
        };
        Some(IpNet(net))
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
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
