//! The public pages' cache: each rendered page (`/`, `/reports`, `/reports/YYYY-MM`, the CSV)
//! with its ETag and the instant its figures are for. A page is computed again when it is older
//! than [`MAX_AGE`] or when a write happened on this instance since (ingest, a manual donation,
//! a job run, a gate admin change: their handlers call [`PageCache::bump`]). Other instances'
//! writes show within [`MAX_AGE`]. While one request computes a page, others get the page it
//! replaces (when there is one) instead of waiting.
use actix_web::http::header::{self, HttpDate};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// How long a computed page is served before its figures are computed again; also the
/// `Cache-Control: max-age` of the answers.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// At most this many pages are kept (the oldest reports are dropped first).
const MAX_ENTRIES: usize = 64;

/// A rendered page as a handler makes it.
pub struct Rendered {
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// The instant the figures are for (whole seconds): `Last-Modified` of a page this
    /// process has not served before (see [`CachedPage::last_modified`]).
    pub as_of: DateTime<Utc>,
    /// `Content-Disposition`, for downloads.
    pub disposition: Option<String>,
}

/// A rendered page as the cache keeps it.
pub struct CachedPage {
    pub body: bytes::Bytes,
    pub content_type: &'static str,
    /// A strong validator: `"` + the first 128 bits of the body's SHA-256 in hex + `"`.
    pub etag: String,
    /// When this content first appeared: the figures' `as_of` for a page this process has not
    /// served before; the previous value when a recomputation gives the same bytes; the time
    /// of the recomputation when it gives other bytes (late data for a past month changes the
    /// page but not its `as_of`, and `If-Modified-Since` must not keep answering 304).
    pub last_modified: SystemTime,
    pub disposition: Option<String>,
    generation: u64,
    made: Instant,
}

impl CachedPage {
    fn new(r: Rendered, generation: u64) -> CachedPage {
        let digest = Sha256::digest(&r.body);
        let etag = format!("\"{}\"", hex::encode(&digest[..16]));
        let secs = u64::try_from(r.as_of.timestamp()).unwrap_or(0);
        CachedPage {
            body: bytes::Bytes::from(r.body),
            content_type: r.content_type,
            etag,
            last_modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            disposition: r.disposition,
            generation,
            made: Instant::now(),
        }
    }

    /// The answer to `req`: 304 when its `If-None-Match` (or, without one, its
    /// `If-Modified-Since`) shows the client has this page, else 200 with the body.
    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        let not_modified = match req.headers().get(header::IF_NONE_MATCH) {
            Some(v) => v.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag)
            }),
            None => req
                .headers()
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| HttpDate::from_str(v).ok())
                .is_some_and(|since| self.last_modified <= SystemTime::from(since)),
        };
        let mut res = if not_modified {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        res.insert_header((header::ETAG, self.etag.clone()))
            .insert_header((
                header::LAST_MODIFIED,
                HttpDate::from(self.last_modified).to_string(),
            ))
            .insert_header((
                header::CACHE_CONTROL,
                format!("public, max-age={}", MAX_AGE.as_secs()),
            ));
        if not_modified {
            return res.finish();
        }
        res.insert_header((header::CONTENT_TYPE, self.content_type));
        if let Some(d) = &self.disposition {
            res.insert_header((header::CONTENT_DISPOSITION, d.clone()));
        }
        res.body(self.body.clone())
    }
}

#[derive(Default)]
pub struct PageCache {
    generation: AtomicU64,
    entries: RwLock<HashMap<String, Arc<CachedPage>>>,
    /// One computation at a time: concurrent misses wait and then find the fresh page.
    compute: tokio::sync::Mutex<()>,
}

impl PageCache {
    pub fn new() -> PageCache {
        PageCache::default()
    }

    /// Marks every cached page out of date (after a write on this instance).
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn fresh(&self, key: &str) -> Option<Arc<CachedPage>> {
        let generation = self.generation.load(Ordering::SeqCst);
        let entries = self.entries.read().expect("page cache lock");
        entries
            .get(key)
            .filter(|p| p.generation == generation && p.made.elapsed() < MAX_AGE)
            .cloned()
    }

    fn any(&self, key: &str) -> Option<Arc<CachedPage>> {
        self.entries
            .read()
            .expect("page cache lock")
            .get(key)
            .cloned()
    }

    /// The cached page `key` when it is fresh, else `compute`s, keeps and returns it.
    pub async fn get_or_compute<F, Fut, E>(
        &self,
        key: &str,
        compute: F,
    ) -> Result<Arc<CachedPage>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Rendered, E>>,
        E: std::fmt::Display,
    {
        if let Some(p) = self.fresh(key) {
            return Ok(p);
        }
        let _guard = match self.compute.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Another request is computing: answer with the page it replaces, if any,
                // rather than make every reader wait for the database.
                if let Some(old) = self.any(key) {
                    return Ok(old);
                }
                self.compute.lock().await
            }
        };
        if let Some(p) = self.fresh(key) {
            return Ok(p);
        }
        // Read the generation before computing: a write during the computation leaves the
        // result already out of date, so the next request computes again.
        let generation = self.generation.load(Ordering::SeqCst);
        let rendered = match compute().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(page = key, error = %e, "page figures not computed; serving the last ones");
                // The figures could not be computed (the database is down, say): the last
                // page, which says what instant it is for, is better than none.
                return self.any(key).ok_or(e);
            }
        };
        let mut page = CachedPage::new(rendered, generation);
        if let Some(old) = self.any(key) {
            page.last_modified = if old.etag == page.etag {
                old.last_modified
            } else {
                let now = SystemTime::now();
                let secs = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                // Whole seconds (HTTP dates have no more), never before the last one.
                (SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
                    .max(old.last_modified + Duration::from_secs(1))
                    .max(page.last_modified)
            };
        }
        let page = Arc::new(page);
        let mut entries = self.entries.write().expect("page cache lock");
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, p)| p.made)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key.to_string(), page.clone());
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> Result<Rendered, String> {
        Ok(Rendered {
            body: body.as_bytes().to_vec(),
            content_type: "text/plain",
            as_of: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            disposition: None,
        })
    }

    #[tokio::test]
    async fn pages_are_kept_until_a_write_and_the_last_one_outlives_a_failure() {
        let cache = PageCache::new();
        let a = cache
            .get_or_compute("/", || async { page("a") })
            .await
            .unwrap();
        let again = cache
            .get_or_compute("/", || async { page("never computed") })
            .await
            .unwrap();
        assert_eq!(again.body, "a", "a fresh page is served as it is");
        assert_eq!(again.etag, a.etag);

        cache.bump();
        let b = cache
            .get_or_compute("/", || async { page("b") })
            .await
            .unwrap();
        assert_eq!(b.body, "b", "a write makes the next request compute again");
        assert_ne!(b.etag, a.etag);

        cache.bump();
        let failed = cache
            .get_or_compute("/", || async {
                Err::<Rendered, _>("database down".to_string())
            })
            .await
            .unwrap();
        assert_eq!(
            failed.body, "b",
            "the last page answers while figures cannot be made"
        );
        let none = cache
            .get_or_compute("/other", || async {
                Err::<Rendered, _>("down".to_string())
            })
            .await;
        assert!(none.is_err(), "no page at all: the error");
    }

    #[tokio::test]
    async fn late_data_moves_last_modified_so_if_modified_since_sees_it() {
        let cache = PageCache::new();
        let as_of = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let first = cache
            .get_or_compute("/reports/2026-10", || async { page("october") })
            .await
            .unwrap();
        assert_eq!(
            first.last_modified, as_of,
            "a new page: its figures' instant"
        );
        cache.bump();
        let same = cache
            .get_or_compute("/reports/2026-10", || async { page("october") })
            .await
            .unwrap();
        assert_eq!(same.last_modified, as_of, "the same bytes: unchanged");
        // A late donation for October: same as_of, other bytes.
        cache.bump();
        let late = cache
            .get_or_compute("/reports/2026-10", || async {
                page("october, with a late refund")
            })
            .await
            .unwrap();
        assert!(late.last_modified > as_of, "{:?}", late.last_modified);
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::IF_MODIFIED_SINCE, HttpDate::from(as_of).to_string()))
            .to_http_request();
        assert_eq!(
            late.respond(&req).status(),
            200,
            "the client's copy is older"
        );
        let req = actix_web::test::TestRequest::default()
            .insert_header((
                header::IF_MODIFIED_SINCE,
                HttpDate::from(late.last_modified).to_string(),
            ))
            .to_http_request();
        assert_eq!(late.respond(&req).status(), 304);
    }
}
