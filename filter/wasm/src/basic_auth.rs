//! Turning a JWT sent as a Basic-auth password into a Bearer token.
//!
//! git asks its credential helper for a user name and password and sends them as
//! `Authorization: Basic b64(user:pass)`. When the password is a JWT, Envoy's jwt_authn (which
//! runs after this rewrite) must see it as `Authorization: Bearer <jwt>` (contract, "Identity").

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

/// The `Authorization` value to use instead of `header`, when it is Basic auth whose password
/// has JWT shape; `None` leaves the header alone.
pub fn bearer_from_basic(header: &[u8]) -> Option<String> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, credentials) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let credentials = credentials.trim();
    let decoded = STANDARD
        .decode(credentials)
        .or_else(|_| STANDARD_NO_PAD.decode(credentials))
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (_user, password) = decoded.split_once(':')?;
    is_jwt_shaped(password).then(|| format!("Bearer {password}"))
}

/// Three non-empty base64url parts separated by dots (JWS compact serialization, RFC 7515 §7.1).
pub fn is_jwt_shaped(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl";

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn a_jwt_password_becomes_a_bearer_token() {
        let header = basic(&format!("agent:{JWT}"));
        assert_eq!(
            bearer_from_basic(header.as_bytes()),
            Some(format!("Bearer {JWT}"))
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_padding_optional() {
        let encoded = STANDARD_NO_PAD.encode(format!("x:{JWT}"));
        let header = format!("basic {encoded}");
        assert_eq!(
            bearer_from_basic(header.as_bytes()),
            Some(format!("Bearer {JWT}"))
        );
    }

    #[test]
    fn an_ordinary_password_is_left_alone() {
        assert_eq!(bearer_from_basic(basic("alice:secret").as_bytes()), None);
        assert_eq!(bearer_from_basic(basic("alice:a.b").as_bytes()), None);
        assert_eq!(bearer_from_basic(basic("alice:a..c").as_bytes()), None);
    }

    #[test]
    fn other_schemes_and_garbage_are_left_alone() {
        assert_eq!(bearer_from_basic(format!("Bearer {JWT}").as_bytes()), None);
        assert_eq!(bearer_from_basic(b"Basic !!!"), None);
        assert_eq!(bearer_from_basic(b"Basic"), None);
        assert_eq!(bearer_from_basic(&[0xff, 0x20]), None);
        assert_eq!(bearer_from_basic(basic("no-colon").as_bytes()), None);
    }

    #[test]
    fn the_user_name_may_be_empty() {
        let header = basic(&format!(":{JWT}"));
        assert_eq!(
            bearer_from_basic(header.as_bytes()),
            Some(format!("Bearer {JWT}"))
        );
    }
}
