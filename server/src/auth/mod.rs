//! Accounts: who may call, and as whom. Passwords ([`password`]), signed
//! tokens ([`tokens`]) and slowed guessing ([`throttle`]) come together in
//! [`Auth`], which the network edge asks about every request (one layer
//! for native gRPC, grpc-web and HTTP: `api::guard`) and which the
//! `CofferAuth` service uses to log people in and out. App passwords
//! ([`app_passwords`]) let clients that speak only HTTP Basic in.

mod app_passwords;
pub mod password;
pub mod throttle;
pub mod tokens;

use crate::caller::Caller;
use crate::meta::{LoginRow, Meta, MetaError, UserRow};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokens::{Keys, ACCESS, DOWNLOAD};

/// How long a download ticket (a token in a URL) lives.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// How long a link that shows a file in the browser (`/view/`) works: a
/// video is read in ranges for as long as it plays.
pub const VIEW_TICKET_TTL: Duration = Duration::from_secs(3600);

/// Hex digits of a share link's id (`meta::random_id`) and of its MAC.
pub const SHARE_ID_HEX: usize = 32;
const SHARE_MAC_HEX: usize = 32;

/// Where the signing key is kept in a shared database.
const KEY_SETTING: &str = "auth_signing_key";

/// Tuning of authentication.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `false`: the development switch, one open namespace for everyone.
    pub enabled: bool,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// A token that may read `/metrics` besides admins' access tokens.
    pub metrics_token: Option<String>,
    /// Password checks (argon2id, [`password::CHECK_MIB`] MiB each) run at
    /// once, server-wide; more wait up to [`PASSWORD_QUEUE_WAIT`].
    pub password_checks: usize,
    /// HTTP Basic (app passwords, for WebDAV) is taken over plain HTTP
    /// too, not only over TLS.
    pub basic_over_http: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            metrics_token: None,
            password_checks: 4,
            basic_over_http: false,
        }
    }
}

/// How long a login or share-link password waits for a turn at the
/// password checks before it is refused as busy (UNAVAILABLE / 503).
pub const PASSWORD_QUEUE_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum AuthError {
    /// No valid credentials: a missing, malformed, expired, forged or
    /// revoked token, or a wrong password.
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials without the right to do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed logins lately; try again after this long.
    #[error("too many failed logins; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    /// Every password check is taken and none came free in time.
    #[error("the server is checking too many passwords at once; try again in a few seconds")]
    Busy,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// What a successful login or refresh returns.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    /// Seconds since the epoch.
    pub access_expires: u64,
    pub refresh: String,
    /// RFC 3339.
    pub refresh_expires: String,
    pub user: UserRow,
}

/// Authentication. Cheap to clone.
#[derive(Clone)]
pub struct Auth(Arc<Inner>);

struct Inner {
    meta: Meta,
    keys: Keys,
    /// Keys the MAC in share-link tokens (derived from the signing key).
    share_key: [u8; 32],
    snapshot_key: [u8; 32],
    cfg: AuthConfig,
    throttle: throttle::Throttle,
    /// Turns at checking a password: each holds argon2's memory.
    checking: tokio::sync::Semaphore,
    password_checks: AtomicU64,
    throttled: AtomicU64,
}

fn unauthenticated(why: &str) -> AuthError {
    AuthError::Unauthenticated(why.to_string())
}

impl Auth {
    pub fn new(meta: Meta, key: &[u8], cfg: AuthConfig) -> Self {
        Self(Arc::new(Inner {
            meta,
            keys: Keys::new(key),
            share_key: blake3::derive_key("coffer 2026-11 share link mac", key),
            snapshot_key: crate::snapshot::mac_key(key),
            checking: tokio::sync::Semaphore::new(cfg.password_checks.max(1)),
            cfg,
            throttle: throttle::Throttle::default(),
            password_checks: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }))
    }

    pub fn enabled(&self) -> bool {
        self.0.cfg.enabled
    }

    /// The key of metadata snapshots' MACs, derived from the signing key.
    pub fn snapshot_key(&self) -> [u8; 32] {
        self.0.snapshot_key
    }

    /// (password hashes checked, login attempts refused unchecked) since
    /// start.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.0.password_checks.load(Ordering::Relaxed),
            self.0.throttled.load(Ordering::Relaxed),
        )
    }

    /// Logs `name` in with `password`, from `addr`.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<Tokens, AuthError> {
        if !self.enabled() {
            return Err(AuthError::Forbidden(
                "authentication is switched off on this server: no login is needed".into(),
            ));
        }
        let wrong = || unauthenticated("wrong user name or password");
        password::check_length(password).map_err(AuthError::InvalidArgument)?;
        // An invalid name is just a wrong one: the same answer, throttled
        // alike, under a short stand-in (it may be megabytes long).
        let valid = password::normalize_name(name).ok();
        let key = valid.clone().unwrap_or_else(|| {
            format!("invalid:{}", &blake3::hash(name.as_bytes()).to_hex()[..16])
        });
        let shown = valid
            .clone()
            .unwrap_or_else(|| format!("(an invalid name of {} bytes)", name.len()));
        let keys = throttle::keys(&key, addr);
        if let Some(wait) = self.0.throttle.wait(&keys, Instant::now()) {
            self.0.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(AuthError::Throttled(wait));
        }
        let user = match &valid {
            Some(n) => self.0.meta.user(n).await?,
            None => None,
        };
        let hash = user.as_ref().map_or_else(
            || password::decoy().to_string(),
            |u| u.password_hash.clone(),
        );
        let matches = self.check_password(&keys, password, hash).await?;
        let Some(user) = user.filter(|_| matches) else {
            tracing::info!(user = %shown, addr = ?addr, "failed login");
            return Err(wrong());
        };
        self.0.throttle.succeeded(&keys);
        tracing::info!(user = %user.name, addr = ?addr, "login");
        let (secret, hash) = tokens::new_refresh_secret();
        let (login, refresh_expires) = self
            .0
            .meta
            .open_login(user.id, &hash, self.0.cfg.refresh_ttl)
            .await?;
        Ok(self.issue(user, &login, format!("{login}.{secret}"), refresh_expires))
    }

    /// A new access token for the login a refresh token names.
    pub async fn refresh(&self, token: &str) -> Result<Tokens, AuthError> {
        let bad = || {
            unauthenticated(
                "the refresh token is not valid (expired, revoked or malformed); log in again",
            )
        };
        let (id, secret) = tokens::split_refresh(token).ok_or_else(bad)?;
        let login = self.0.meta.login(id).await?.ok_or_else(bad)?;
        if !same(&login.token_hash, &tokens::refresh_hash(secret)) {
            return Err(bad());
        }
        let LoginRow {
            id,
            user,
            expires_at,
            ..
        } = login;
        Ok(self.issue(user, &id, token.to_string(), expires_at))
    }

    /// Ends the login of `token` (one of the caller's own), or the
    /// caller's current login when `token` is empty.
    pub async fn logout(&self, caller: &Caller, token: &str) -> Result<(), AuthError> {
        let id = if token.is_empty() {
            caller
                .login
                .clone()
                .ok_or_else(|| AuthError::InvalidArgument("no login to end".into()))?
        } else {
            let bad = || AuthError::InvalidArgument("not a refresh token of yours".into());
            let (id, secret) = tokens::split_refresh(token).ok_or_else(bad)?;
            match self.0.meta.login(id).await? {
                Some(l)
                    if l.user.id == caller.owner
                        && same(&l.token_hash, &tokens::refresh_hash(secret)) => {}
                // Ended already: logging out again is fine.
                None => return Ok(()),
                Some(_) => return Err(bad()),
            }
            id.to_string()
        };
        self.0.meta.close_login(&id).await?;
        Ok(())
    }

    fn issue(
        &self,
        user: UserRow,
        login: &str,
        refresh: String,
        refresh_expires: String,
    ) -> Tokens {
        let claims = tokens::claims(user.id, login, ACCESS, self.0.cfg.access_ttl);
        Tokens {
            access: self.0.keys.sign(&claims),
            access_expires: claims.exp,
            refresh,
            refresh_expires,
            user,
        }
    }

    /// The caller an `authorization` header value names: a live access
    /// token of a live login. With authentication off, everyone.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        if !self.enabled() {
            return Ok(Caller::anyone());
        }
        let header = authorization.ok_or_else(|| {
            unauthenticated(
                "authentication required: send `authorization: Bearer <access token>` \
                 (log in with CofferAuth/Login, or `coffer login`)",
            )
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                unauthenticated("the authorization header must be `Bearer <access token>`")
            })?;
        let claims = self.0.keys.verify(token, ACCESS).ok_or_else(|| {
            unauthenticated(
                "the access token is not valid (expired, malformed or not issued here); \
                 refresh it or log in again",
            )
        })?;
        self.live(&claims).await
    }

    /// Whether `who`'s login is still live (an open stream asks this now
    /// and then). `true` without authentication, and while the database
    /// cannot say: a stream is not cut for a passing outage.
    pub async fn still_live(&self, who: &Caller) -> bool {
        let Some(login) = &who.login else {
            return true;
        };
        match self.0.meta.login(login).await {
            Ok(found) => found.is_some_and(|l| l.user.id == who.owner),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether a login is live");
                true
            }
        }
    }

    /// The caller of `claims` if their login is live, as the user is now.
    async fn live(&self, claims: &tokens::Claims) -> Result<Caller, AuthError> {
        let login = self
            .0
            .meta
            .login(&claims.sid)
            .await?
            .filter(|l| l.user.id.to_string() == claims.sub)
            .ok_or_else(|| unauthenticated("the login has ended; log in again"))?;
        Ok(Caller {
            owner: login.user.id,
            name: login.user.name,
            role: login.user.role,
            login: Some(login.id),
        })
    }

    /// A ticket that downloads version `version` (0: the latest) of `path`
    /// as `caller` for `ttl` ([`TICKET_TTL`] for a download, longer for
    /// media read in ranges as it plays), and when it expires (seconds
    /// since the epoch). It ends with the login sooner.
    pub fn ticket(
        &self,
        caller: &Caller,
        path: &str,
        version: u64,
        ttl: Duration,
    ) -> (String, u64) {
        let mut claims = tokens::claims(
            caller.owner,
            caller.login.as_deref().unwrap_or(""),
            DOWNLOAD,
            ttl,
        );
        claims.path = Some(path.to_string());
        claims.ver = Some(version);
        (self.0.keys.sign(&claims), claims.exp)
    }

    /// The caller, file and version of a live download ticket.
    pub async fn redeem(&self, ticket: &str) -> Result<(Caller, String, u64), AuthError> {
        if !self.enabled() {
            return Ok((Caller::anyone(), String::new(), 0));
        }
        let claims = self
            .0
            .keys
            .verify(ticket, DOWNLOAD)
            .ok_or_else(|| unauthenticated("the download link has expired or is not valid"))?;
        let caller = self.live(&claims).await?;
        Ok((
            caller,
            claims.path.unwrap_or_default(),
            claims.ver.unwrap_or(0),
        ))
    }

    /// The URL token of share link `id`: the id and a MAC over it, so the
    /// server keeps no secret per link and can show a link again, and a
    /// token changed anywhere names no link.
    pub fn share_token(&self, id: &str) -> String {
        format!("{id}{}", self.share_mac(id))
    }

    fn share_mac(&self, id: &str) -> String {
        let mac = blake3::keyed_hash(&self.0.share_key, id.as_bytes());
        mac.to_hex()[..SHARE_MAC_HEX].to_string()
    }

    /// The link id a share token names, if its MAC is right.
    pub fn share_id(&self, token: &str) -> Option<String> {
        if token.len() != SHARE_ID_HEX + SHARE_MAC_HEX || !token.is_ascii() {
            return None;
        }
        let (id, mac) = token.split_at(SHARE_ID_HEX);
        same(&self.share_mac(id), mac).then(|| id.to_string())
    }

    /// Checks a share link's password, slowed per link and per address
    /// after failures, as logins are.
    pub async fn check_share_password(
        &self,
        link: &str,
        hash: &str,
        given: &str,
        addr: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        password::check_length(given).map_err(AuthError::InvalidArgument)?;
        let keys = match addr {
            Some(a) => vec![format!("share:{link}@{a}"), format!("share-addr:{a}")],
            None => vec![format!("share:{link}")],
        };
        if let Some(wait) = self.0.throttle.wait(&keys, Instant::now()) {
            self.0.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(AuthError::Throttled(wait));
        }
        if self.check_password(&keys, given, hash.to_string()).await? {
            self.0.throttle.succeeded(&keys);
            Ok(())
        } else {
            tracing::info!(link, addr = ?addr, "wrong share link password");
            Err(unauthenticated("wrong password for this link"))
        }
    }

    /// Checks `given` against the PHC string `hash` for an attempt with
    /// the throttle `keys`: first a turn at the bounded password checks
    /// (argon2 holds [`password::CHECK_MIB`] MiB, so they are few; busy
    /// after [`PASSWORD_QUEUE_WAIT`]), then the attempt is counted as a
    /// failure before the check (throttled if that is too many), to be
    /// forgiven by the caller on a match.
    async fn check_password(
        &self,
        keys: &[String],
        given: &str,
        hash: String,
    ) -> Result<bool, AuthError> {
        let _turn = tokio::time::timeout(PASSWORD_QUEUE_WAIT, self.0.checking.acquire())
            .await
            .map_err(|_| AuthError::Busy)?
            .expect("the semaphore is never closed");
        if let Err(wait) = self.0.throttle.attempt(keys, Instant::now()) {
            self.0.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(AuthError::Throttled(wait));
        }
        self.0.password_checks.fetch_add(1, Ordering::Relaxed);
        let given = given.to_string();
        Ok(
            tokio::task::spawn_blocking(move || password::verify(&given, &hash))
                .await
                .unwrap_or(false),
        )
    }

    /// Whether `authorization` may read `/metrics`: an admin's access
    /// token, or the configured scrape token.
    pub async fn may_scrape(&self, authorization: Option<&str>) -> Result<(), AuthError> {
        if let (Some(want), Some(got)) = (&self.0.cfg.metrics_token, authorization) {
            if same(&format!("Bearer {want}"), got) {
                return Ok(());
            }
        }
        let caller = self.authenticate(authorization).await?;
        if caller.is_admin() {
            Ok(())
        } else {
            Err(AuthError::Forbidden(
                "/metrics is for admins (or the scrape token)".into(),
            ))
        }
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Loads the signing key: `configured` (at least 32 bytes), else the key
/// file (created once, 0600) of a server with its own data dir, else the
/// shared database's, so every server of a scaled-out deployment accepts
/// every token.
pub async fn load_key(
    meta: &Meta,
    configured: Option<&str>,
    key_file: Option<&Path>,
) -> Result<Vec<u8>, AuthError> {
    if let Some(k) = configured {
        if k.len() < 32 {
            return Err(AuthError::Config(
                "COFFER_AUTH_KEY must be at least 32 characters".into(),
            ));
        }
        return Ok(k.as_bytes().to_vec());
    }
    let fresh = crate::meta::random_id() + &crate::meta::random_id();
    match key_file {
        Some(path) => read_or_create_key(path, &fresh),
        None => Ok(meta.init_setting(KEY_SETTING, &fresh).await?.into_bytes()),
    }
}

/// The signing key used when authentication is off (it signs nothing a
/// client sees; snapshots are still keyed by it).
pub const KEY_WHEN_DISABLED: &[u8] = b"unused: authentication is off";

/// The signing key a server of this configuration runs with, read and
/// never created: `configured`, else the key file. `None` if neither is
/// there.
pub fn existing_key(
    configured: Option<&str>,
    key_file: &Path,
) -> Result<Option<Vec<u8>>, AuthError> {
    if let Some(k) = configured {
        if k.len() < 32 {
            return Err(AuthError::Config(
                "COFFER_AUTH_KEY must be at least 32 characters".into(),
            ));
        }
        return Ok(Some(k.as_bytes().to_vec()));
    }
    match std::fs::read_to_string(key_file) {
        Ok(k) if k.trim().len() >= 32 => Ok(Some(k.trim().as_bytes().to_vec())),
        Ok(_) => Err(AuthError::Config(format!(
            "signing key {} is shorter than 32 characters",
            key_file.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuthError::Config(format!(
            "signing key {}: {e}",
            key_file.display()
        ))),
    }
}

fn read_or_create_key(path: &Path, fresh: &str) -> Result<Vec<u8>, AuthError> {
    use std::io::Write;
    let cfg = |e: std::io::Error| AuthError::Config(format!("signing key {}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(k) if k.trim().len() >= 32 => return Ok(k.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(AuthError::Config(format!(
                "signing key {} is shorter than 32 characters",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(cfg(e)),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(cfg)?;
    f.write_all(fresh.as_bytes()).map_err(cfg)?;
    f.sync_all().map_err(cfg)?;
    Ok(fresh.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_key_file_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let meta: Meta = Arc::new(crate::meta::sqlite::open_in_memory().unwrap());
        let path = dir.path().join("auth.key");
        let k1 = load_key(&meta, None, Some(&path)).await.unwrap();
        let k2 = load_key(&meta, None, Some(&path)).await.unwrap();
        assert_eq!(k1, k2);
        assert!(k1.len() >= 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Shared in the database when there is no key file.
        let d1 = load_key(&meta, None, None).await.unwrap();
        assert_eq!(d1, load_key(&meta, None, None).await.unwrap());
        assert!(load_key(&meta, Some("short"), None).await.is_err());
    }
}
