//! Signed links. A confirmation token is `c.<subscriber id>.<expiry unix>.<mac>` and expires;
//! an unsubscribe token is `u.<subscriber id>.<mac>` and does not (an old report's link must
//! still work). `mac` is the hex HMAC-SHA256, under the [`EmailKey`], of the purpose, the
//! subscriber's id and address and the expiry, so a token works for one address only and no
//! token can be made without the key. Tokens are checked in constant time.
use super::EmailKey;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long a confirmation link works.
pub const CONFIRM_TTL_SECONDS: i64 = 48 * 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Confirm,
    Unsubscribe,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::Confirm => "c",
            Purpose::Unsubscribe => "u",
        }
    }
}

/// A token's parts once parsed (not yet verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub purpose: Purpose,
    pub subscriber_id: i64,
    pub expires: Option<i64>,
    mac: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is incomplete or damaged (copy the whole link from the email)")]
    Malformed,
    #[error("the link is not valid")]
    BadSignature,
    #[error("the link has expired; subscribe again to get a new one")]
    Expired,
}

fn mac(
    key: &EmailKey,
    purpose: Purpose,
    id: i64,
    email: &str,
    expires: Option<i64>,
) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes()).expect("HMAC takes any key");
    let expires = expires.map_or(String::new(), |e| e.to_string());
    m.update(format!("buildfund/{}\n{id}\n{email}\n{expires}", purpose.tag()).as_bytes());
    m
}

pub fn sign(
    key: &EmailKey,
    purpose: Purpose,
    id: i64,
    email: &str,
    expires: Option<i64>,
) -> String {
    let sig = hex::encode(
        mac(key, purpose, id, email, expires)
            .finalize()
            .into_bytes(),
    );
    match expires {
        Some(e) => format!("{}.{id}.{e}.{sig}", purpose.tag()),
        None => format!("{}.{id}.{sig}", purpose.tag()),
    }
}

pub fn confirm_token(key: &EmailKey, id: i64, email: &str, now: i64) -> String {
    sign(
        key,
        Purpose::Confirm,
        id,
        email,
        Some(now + CONFIRM_TTL_SECONDS),
    )
}

pub fn unsubscribe_token(key: &EmailKey, id: i64, email: &str) -> String {
    sign(key, Purpose::Unsubscribe, id, email, None)
}

/// Reads a token of the expected purpose (the subscriber it names is to be looked up next).
pub fn parse(token: &str, purpose: Purpose) -> Result<Parsed, TokenError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let (id, expires, sig) = match (purpose, parts.as_slice()) {
        (Purpose::Confirm, ["c", id, exp, sig]) => (
            *id,
            Some(exp.parse::<i64>().map_err(|_| TokenError::Malformed)?),
            *sig,
        ),
        (Purpose::Unsubscribe, ["u", id, sig]) => (*id, None, *sig),
        _ => return Err(TokenError::Malformed),
    };
    let subscriber_id = id.parse::<i64>().map_err(|_| TokenError::Malformed)?;
    let mac = hex::decode(sig).map_err(|_| TokenError::Malformed)?;
    if mac.len() != 32 {
        return Err(TokenError::Malformed);
    }
    Ok(Parsed {
        purpose,
        subscriber_id,
        expires,
        mac,
    })
}

/// Checks a parsed token against the subscriber's address and the time.
pub fn verify(key: &EmailKey, token: &Parsed, email: &str, now: i64) -> Result<(), TokenError> {
    mac(
        key,
        token.purpose,
        token.subscriber_id,
        email,
        token.expires,
    )
    .verify_slice(&token.mac)
    .map_err(|_| TokenError::BadSignature)?;
    if token.expires.is_some_and(|e| now > e) {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> EmailKey {
        EmailKey::from_bytes(vec![b; 32])
    }

    #[test]
    fn confirm_tokens_verify_until_they_expire() {
        let t = confirm_token(&key(1), 7, "a@example.org", 1000);
        let p = parse(&t, Purpose::Confirm).unwrap();
        assert_eq!(p.subscriber_id, 7);
        assert_eq!(
            verify(&key(1), &p, "a@example.org", 1000 + CONFIRM_TTL_SECONDS),
            Ok(())
        );
        assert_eq!(
            verify(&key(1), &p, "a@example.org", 1001 + CONFIRM_TTL_SECONDS),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampering_or_another_key_or_address_fails() {
        let t = confirm_token(&key(1), 7, "a@example.org", 1000);
        let p = parse(&t, Purpose::Confirm).unwrap();
        assert_eq!(
            verify(&key(2), &p, "a@example.org", 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&key(1), &p, "b@example.org", 0),
            Err(TokenError::BadSignature)
        );
        // A later expiry or another id invalidates the signature.
        let forged = t.replacen(
            &format!(".{}.", 1000 + CONFIRM_TTL_SECONDS),
            ".99999999999.",
            1,
        );
        let p = parse(&forged, Purpose::Confirm).unwrap();
        assert_eq!(
            verify(&key(1), &p, "a@example.org", 0),
            Err(TokenError::BadSignature)
        );
        let forged = t.replacen("c.7.", "c.8.", 1);
        let p = parse(&forged, Purpose::Confirm).unwrap();
        assert_eq!(
            verify(&key(1), &p, "a@example.org", 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn purposes_do_not_mix_and_garbage_is_malformed() {
        let u = unsubscribe_token(&key(1), 7, "a@example.org");
        assert_eq!(parse(&u, Purpose::Confirm), Err(TokenError::Malformed));
        let p = parse(&u, Purpose::Unsubscribe).unwrap();
        assert_eq!(verify(&key(1), &p, "a@example.org", i64::MAX), Ok(()));
        for bad in ["", "u.7", "u.x.00", "u.7.zz", "c.7.1.00"] {
            assert!(
                parse(bad, Purpose::Unsubscribe).is_err() || parse(bad, Purpose::Confirm).is_err(),
                "{bad}"
            );
        }
    }
}
