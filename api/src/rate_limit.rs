//! A per-client rate limit kept in memory (each instance counts its own clients): at most `max`
//! requests in any `window`. Used by `POST /subscribe`.
use actix_web::HttpRequest;
use buildfund_jobs::config::IpNet;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as GovernorLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

/// A per-client limiter (`governor`'s GCRA, one state per client address): a client may send
/// `max` requests at once, then one more each `window`, so no client ever gets more than `max`
/// requests into any `window`; after `max` windows of quiet its budget is whole again.
///
/// The states of clients seen lately are kept; once the map has twice as many clients as after
/// the last sweep (and at least [`SWEEP_FROM`]), the clients whose budget is whole again are
/// dropped. A sweep visits every client, but it comes only after as many new ones, so the work
/// per request stays constant however many clients there are.
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// The size of the map that triggers the next sweep.
    sweep_at: AtomicUsize,
    /// Clients visited by sweeps, in all (for tests: the cost of the requests so far).
    swept: AtomicUsize,
}

/// The number of clients below which the limiter never sweeps.
pub const SWEEP_FROM: usize = 10_000;

impl RateLimiter {
    pub fn new(max: usize, window: Duration) -> RateLimiter {
        let burst = NonZeroU32::new(u32::try_from(max).unwrap_or(u32::MAX).max(1))
            .unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(window.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        RateLimiter {
            limiter: GovernorLimiter::keyed(quota),
            sweep_at: AtomicUsize::new(SWEEP_FROM),
            swept: AtomicUsize::new(0),
        }
    }

    /// Counts a request of `client`; `Err(wait)` when it is over the limit (`wait` until it may
    /// send the next one). Refused requests are not counted.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let answer = self
            .limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()));
        self.sweep_if_grown();
        answer
    }

    fn sweep_if_grown(&self) {
        let len = self.limiter.len();
        let at = self.sweep_at.load(Ordering::Relaxed);
        if len < at
            || self
                .sweep_at
                .compare_exchange(at, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // This request won the sweep (the map is locked while it runs, once per doubling).
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.swept.fetch_add(len, Ordering::Relaxed);
        let kept = self.limiter.len();
        self.sweep_at
            .store(kept.saturating_mul(2).max(SWEEP_FROM), Ordering::Relaxed);
    }

    /// Clients whose state is kept now.
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }

    /// Clients visited by sweeps so far, in all.
    pub fn swept(&self) -> usize {
        self.swept.load(Ordering::Relaxed)
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

    #[test]
    fn many_clients_do_not_make_a_request_cost_more() {
        let l = RateLimiter::new(5, Duration::from_secs(600));
        let requests = 5 * SWEEP_FROM;
        for i in 0..requests {
            let client = IpAddr::from(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | i as u128));
            assert!(l.check(client).is_ok(), "client {i} has its own budget");
        }
        // Each client still has a spent request in its window: all are kept, and the sweeps
        // that found them all still there visited fewer clients than two per request.
        assert_eq!(l.clients(), requests);
        assert!(l.swept() > 0, "the map was swept");
        assert!(
            l.swept() < 2 * requests,
            "{} clients visited for {requests} requests",
            l.swept()
        );
    }

    #[test]
    fn a_sweep_drops_clients_whose_budget_is_whole_again() {
        let l = RateLimiter::new(1, Duration::from_nanos(1));
        for i in 0..SWEEP_FROM as u32 + 1 {
            let _ = l.check(IpAddr::from(std::net::Ipv4Addr::from(i)));
        }
        assert!(l.clients() < SWEEP_FROM, "{} clients kept", l.clients());
    }
}
