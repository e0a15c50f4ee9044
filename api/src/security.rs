//! Headers that keep browsers from framing the pages, sniffing content types or leaking page
//! addresses to other sites, on every answer (JSON included, where they cost nothing).
//!
//! The pages carry their stylesheet inline (`<style>` in the base template, a `style` width on
//! the goal bars), so styles may be inline; nothing else may: no scripts at all, no plugins, no
//! framing, forms only to this origin.
use actix_web::middleware::DefaultHeaders;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
     script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The middleware adding them (a handler that sets one of them itself keeps its own).
pub fn headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
}
