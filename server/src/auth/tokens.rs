//! Signed tokens: short-lived access tokens and one-minute download
//! tickets, as JWTs signed with HS256 (the only algorithm accepted), and
//! opaque refresh tokens `<login id>.<secret>`, stored as a hash.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a token is for.
pub const ACCESS: &str = "access";
pub const DOWNLOAD: &str = "download";

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The login the token was issued under: revoking it ends the token.
    pub sid: String,
    /// [`ACCESS`] or [`DOWNLOAD`].
    pub typ: String,
    pub iat: u64,
    pub exp: u64,
    /// A download ticket's file and version (0: the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<u64>,
}

/// The signing key.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Keys {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The claims of `token` if it is an unexpired token of kind `typ`
    /// signed with this key by HS256; `None` otherwise (also for `alg:
    /// none` and every other algorithm).
    pub fn verify(&self, token: &str, typ: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()?
            .claims;
        (claims.typ == typ).then_some(claims)
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Claims of kind `typ` for user `sub` under login `sid`, valid for `ttl`.
pub fn claims(sub: i64, sid: &str, typ: &str, ttl: Duration) -> Claims {
    let iat = now();
    Claims {
        sub: sub.to_string(),
        sid: sid.to_string(),
        typ: typ.to_string(),
        iat,
        exp: iat + ttl.as_secs().max(1),
        path: None,
        ver: None,
    }
}

/// A new refresh secret and the hash to store. The token handed out is
/// `<login id>.<secret>`.
pub fn new_refresh_secret() -> (String, String) {
    let secret = crate::meta::random_id() + &crate::meta::random_id();
    let hash = refresh_hash(&secret);
    (secret, hash)
}

/// The stored form of a refresh secret. Secrets are long random strings,
/// so a fast hash is enough: nothing can be guessed from it.
pub fn refresh_hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// A refresh token's login id and secret.
pub fn split_refresh(token: &str) -> Option<(&str, &str)> {
    token
        .split_once('.')
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

/// RFC 3339 of a time in seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .map(crate::meta::rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn only_our_key_our_algorithm_and_live_tokens_pass() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef");
        let c = claims(7, "login", ACCESS, Duration::from_secs(60));
        let t = keys.sign(&c);
        assert_eq!(keys.verify(&t, ACCESS), Some(c.clone()));
        assert_eq!(keys.verify(&t, DOWNLOAD), None, "wrong kind");
        let other = Keys::new(b"another key, just as long as ours");
        assert_eq!(other.verify(&t, ACCESS), None, "another key");

        let mut old = c.clone();
        old.exp = now() - 1;
        assert_eq!(keys.verify(&keys.sign(&old), ACCESS), None, "expired");

        // alg: none, with our claims and no signature.
        let body = serde_json::to_string(&c).unwrap();
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&body));
        assert_eq!(keys.verify(&none, ACCESS), None, "alg none");
        // HS512 with our key.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &c,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(keys.verify(&hs512, ACCESS), None, "other algorithm");
        assert_eq!(keys.verify("garbage", ACCESS), None);
    }

    #[test]
    fn refresh_tokens_name_their_login_and_are_stored_hashed() {
        let (secret, h) = new_refresh_secret();
        assert_eq!(refresh_hash(&secret), h);
        assert!(!h.contains(&secret));
        let token = format!("abc.{secret}");
        assert_eq!(split_refresh(&token), Some(("abc", secret.as_str())));
        assert_eq!(split_refresh("nodot"), None);
        assert_eq!(split_refresh(".x"), None);
    }
}
