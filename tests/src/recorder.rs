//! A local HTTP stand-in that records every request and answers through a function: the
//! webhook receiver, the Hydra stand-in of the gate's outgoing actions, and the redirector
//! that answers everything with a 307 to another origin.
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the stand-in saw it: (method, path and query, headers, body).
pub type Request = (String, String, Vec<(String, String)>, String);

/// How the stand-in answers `(method, path and query, how many times this very request came)`
/// (a retry repeats a request, so the count is 2 on its second delivery).
pub type Respond = fn(&str, &str, usize) -> HttpResponse;

/// [`Respond`], or a closure answering the same way (the redirector's, which knows its target).
type Answer = Arc<dyn Fn(&str, &str, usize) -> HttpResponse + Send + Sync>;

/// Every request seen so far.
pub type Seen = Arc<Mutex<Vec<Request>>>;

pub struct Recorder {
    url: String,
    seen: Seen,
    handle: actix_web::dev::ServerHandle,
}

impl Recorder {
    pub async fn start(respond: Respond) -> Recorder {
        Recorder::answering(Arc::new(respond)).await
    }

    /// A listener answering every request with a 307 to the same path and query on `to`
    /// (another origin, `http://127.0.0.1:PORT`), recording what it got.
    pub async fn redirector(to: &str) -> Recorder {
        let to = to.trim_end_matches('/').to_string();
        Recorder::answering(Arc::new(move |_: &str, path: &str, _: usize| {
            HttpResponse::TemporaryRedirect()
                .insert_header(("location", format!("{to}{path}")))
                .finish()
        }))
        .await
    }

    async fn answering(respond: Answer) -> Recorder {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let server = HttpServer::new(move || {
            let (s, respond) = (s.clone(), respond.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (s, respond) = (s.clone(), respond.clone());
                async move {
                    let path = req.uri().to_string();
                    let method = req.method().to_string();
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    let body = String::from_utf8_lossy(&body).to_string();
                    let n = {
                        let mut g = s.lock().unwrap();
                        g.push((method.clone(), path.clone(), headers, body.clone()));
                        // How many times this very request came (a retry repeats it).
                        g.iter()
                            .filter(|r| r.0 == method && r.1 == path && r.3 == body)
                            .count()
                    };
                    respond(&method, &path, n)
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("bind the stand-in");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Recorder {
            url: format!("http://127.0.0.1:{port}"),
            seen,
            handle,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    /// Waits (up to 10 s) until a request matching `what` came; returns every match.
    pub async fn wait_for(&self, what: impl Fn(&Request) -> bool) -> Vec<Request> {
        for _ in 0..100 {
            let found: Vec<_> = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .filter(|r| what(r))
                .cloned()
                .collect();
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the stand-in never saw the request; it saw {:?}",
            self.seen.lock().unwrap()
        );
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// A request's header, by case-insensitive name.
pub fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.2.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
