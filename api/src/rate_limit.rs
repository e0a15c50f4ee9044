//! A per-client rate limit kept in memory (each instance counts its own clients): at most `max`
//! requests in any sliding `window`. Used by `POST /subscribe`.
use actix_web::HttpRequest;
use buildfund_jobs::config::IpNet;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The client's address: the TCP peer, unless the peer is one of `trusted` (the deployment's
/// reverse proxies, `server.trusted_proxies`); then the right-most `X-Forwarded-For` entry that is
/// not itself a trusted proxy, i.e. the address the outermost trusted proxy saw. Entries a client
/// wrote itself stand to the left of that one and are never used. An entry that is not an IP
/// address ends the walk at the proxy that passed it on.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut hops = Vec::new();
    for value in req.headers().get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return Some(peer);
        };
        hops.extend(text.split(',').map(str::trim));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            return Some(client);
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

pub struct RateLimiter {
    max: usize,
    window: Duration,
    hits: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(max: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            max,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request of `client`; `Err(wait)` when it is over the limit (`wait` until the
    /// oldest counted request leaves the window). Refused requests are not counted.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() > 10_000 {
            let window = self.window;
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = hits.entry(client).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.max {
            let oldest = *q.front().expect("full queue");
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_per_window_per_client() {
        let l = RateLimiter::new(2, Duration::from_secs(600));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        let wait = l.check(a).unwrap_err();
        assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(600));
        assert!(l.check(b).is_ok(), "another client has its own budget");
        let short = RateLimiter::new(1, Duration::from_millis(20));
        assert!(short.check(a).is_ok());
        assert!(short.check(a).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(short.check(a).is_ok(), "the window slides");
    }

    fn request(peer: &str, forwarded: &[&str]) -> HttpRequest {
        let mut r = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
        for f in forwarded {
            r = r.append_header(("X-Forwarded-For", *f));
        }
        r.to_http_request()
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let trusted = [
            IpNet::parse("10.0.0.0/8").unwrap(),
            IpNet::parse("192.0.2.7").unwrap(),
        ];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // No trusted proxies: the header is whatever the client wrote; ignored.
        assert_eq!(
            client_ip(&request("198.51.100.9:4000", &["203.0.113.1"]), &[]),
            ip("198.51.100.9")
        );
        // An untrusted peer cannot choose its address either.
        assert_eq!(
            client_ip(&request("198.51.100.9:4000", &["203.0.113.1"]), &trusted),
            ip("198.51.100.9")
        );
        // Through one trusted proxy: the address it saw (a spoofed entry on the left is not used).
        assert_eq!(
            client_ip(
                &request("10.1.2.3:4000", &["6.6.6.6, 203.0.113.1"]),
                &trusted
            ),
            ip("203.0.113.1")
        );
        // Through two trusted proxies, the header in two lines.
        assert_eq!(
            client_ip(
                &request("10.1.2.3:4000", &["203.0.113.1", "192.0.2.7"]),
                &trusted
            ),
            ip("203.0.113.1")
        );
        // Garbage stops the walk at the proxy that passed it on.
        assert_eq!(
            client_ip(&request("10.1.2.3:4000", &["not-an-ip"]), &trusted),
            ip("10.1.2.3")
        );
        // No header at all: the proxy itself.
        assert_eq!(
            client_ip(&request("10.1.2.3:4000", &[]), &trusted),
            ip("10.1.2.3")
        );
    }
}
