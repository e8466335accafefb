//! App passwords: for clients that speak only HTTP Basic (WebDAV in
//! Finder, Explorer, GNOME Files, rclone, phones). Each is `ID.SECRET`
//! with a long random secret, shown once and stored as its hash (a fast
//! hash is enough: nothing short is ever guessed); revoking one ends it
//! without touching the account password, which Basic never carries.
//! Wrong ones are throttled like logins.

use super::{password, same, throttle, tokens, unauthenticated, Auth, AuthError};
use crate::caller::Caller;
use crate::meta::AppPasswordRow;
use base64::Engine;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The longest app password name.
const MAX_NAME: usize = 64;

impl Auth {
    /// Whether HTTP Basic may be sent over plain HTTP (it carries the
    /// password in the clear).
    pub fn basic_over_http(&self) -> bool {
        self.0.cfg.basic_over_http
    }

    /// A new app password named `name` for the caller: its row and the
    /// password itself, which is never shown again.
    pub async fn create_app_password(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(AppPasswordRow, String), AuthError> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(AuthError::InvalidArgument(format!(
                "an app password needs a name of 1 to {MAX_NAME} bytes, without control \
                 characters (such as the device it is for)"
            )));
        }
        let id = crate::meta::random_id();
        let (secret, hash) = tokens::new_refresh_secret();
        let row = self
            .0
            .meta
            .add_app_password(caller.owner, &id, name, &hash)
            .await?;
        Ok((row, format!("{id}.{secret}")))
    }

    /// The caller's app passwords, by name (never their secrets).
    pub async fn app_passwords(&self, caller: &Caller) -> Result<Vec<AppPasswordRow>, AuthError> {
        Ok(self.0.meta.app_passwords(caller.owner).await?)
    }

    /// Revokes the caller's app password `name`; `false` if there is none.
    pub async fn revoke_app_password(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<bool, AuthError> {
        Ok(self.0.meta.revoke_app_password(caller.owner, name).await?)
    }

    /// The caller HTTP Basic `credentials` (base64 of `user:app password`)
    /// name, from `addr`. Failures count against the user and the address,
    /// as logins do.
    pub async fn basic(
        &self,
        credentials: &str,
        addr: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        let bad = || {
            unauthenticated(
                "wrong user name or app password (WebDAV takes an app password, not the \
                 account's: create one with `coffer app-password create NAME`)",
            )
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| unauthenticated("malformed Basic credentials"))?;
        let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
        let name = password::normalize_name(user).ok();
        let key = name.clone().unwrap_or_else(|| {
            format!("invalid:{}", &blake3::hash(user.as_bytes()).to_hex()[..16])
        });
        let keys = throttle::keys(&key, addr);
        // Counted as a failure before the check, forgiven on success, so
        // guesses sent at once cannot all slip through.
        if let Err(wait) = self.0.throttle.attempt(&keys, Instant::now()) {
            self.0.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(AuthError::Throttled(wait));
        }
        let found = match tokens::split_refresh(pass) {
            Some((id, secret)) if name.is_some() => {
                self.0.meta.app_password(id).await?.filter(|(a, u)| {
                    Some(&u.name) == name.as_ref()
                        && same(&a.secret_hash, &tokens::refresh_hash(secret))
                })
            }
            _ => None,
        };
        let Some((_, user)) = found else {
            tracing::info!(user = %key, addr = ?addr, "failed app password");
            return Err(bad());
        };
        self.0.throttle.succeeded(&keys);
        Ok(Caller {
            owner: user.id,
            name: user.name,
            role: user.role,
            login: None,
        })
    }
}
