//! Share links: one version of one file, downloadable by anyone with the
//! URL until it expires or is revoked, optionally behind a password.
//!
//! The URL's token is the link's id plus a MAC under the server's key
//! ([`Auth::share_token`]), so a guessed or altered token names nothing,
//! and the owner can see their links' URLs again. A link is bound to the
//! file's row and a version number: it never reaches another file or
//! version, and dies with its file (deleted) or version (expired).

use crate::auth::{password, Auth, AuthError};
use crate::caller::Caller;
use crate::files::{FileError, FileVersion, Files};
use crate::meta::{random_id, ChunkRef, Meta, NewShare, Role, ShareRow};
use coffer_proto::paths;
use std::net::IpAddr;
use std::time::Duration;
use thiserror::Error;

/// The shortest password a link may have: a guesser is slowed per link
/// and address, but a short password falls to guessers at many
/// addresses.
pub const MIN_SHARE_PASSWORD: usize = 8;

/// A link's life when the request names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest life a link may have.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a share link does not serve.
#[derive(Debug, Error)]
pub enum ShareError {
    /// No such link (or a token altered anywhere), or its file or version
    /// is gone.
    #[error("no such link")]
    NotFound,
    #[error("this link has expired")]
    Expired,
    #[error("this link was revoked by its owner")]
    Revoked,
    /// The link has a password and the request gave none.
    #[error("this link needs a password")]
    PasswordRequired,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    File(#[from] FileError),
}

/// A link as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareView {
    pub row: ShareRow,
    /// Path on this server: `/s/<token>`.
    pub url: String,
    pub expired: bool,
}

/// The share-link service.
#[derive(Clone)]
pub struct Shares {
    meta: Meta,
    files: Files,
    auth: Auth,
}

impl Shares {
    pub fn new(meta: Meta, files: Files, auth: Auth) -> Self {
        Self { meta, files, auth }
    }

    fn view(&self, row: ShareRow) -> ShareView {
        let expired = row.expires_at.as_str() <= crate::meta::now_rfc3339().as_str();
        ShareView {
            url: format!("/s/{}", self.auth.share_token(&row.id)),
            row,
            expired,
        }
    }

    /// Creates a link to `version` (0: the latest now) of the caller's
    /// file `path`.
    pub async fn create(
        &self,
        caller: &Caller,
        path: &str,
        version: u64,
        expires_in: Option<Duration>,
        password: &str,
    ) -> Result<ShareView, FileError> {
        let path = paths::normalize(path)?;
        let ttl = expires_in.unwrap_or(DEFAULT_TTL);
        if ttl > MAX_TTL {
            return Err(FileError::InvalidArgument(format!(
                "a link lives at most {} days",
                MAX_TTL.as_secs() / 86_400
            )));
        }
        let password_hash = match password {
            "" => None,
            p if p.chars().count() < MIN_SHARE_PASSWORD => {
                return Err(FileError::InvalidArgument(format!(
                    "a link's password needs at least {MIN_SHARE_PASSWORD} characters \
                     (or none at all)"
                )));
            }
            p => {
                password::check_length(p).map_err(FileError::InvalidArgument)?;
                let p = p.to_string();
                let hash = tokio::task::spawn_blocking(move || password::hash(&p))
                    .await
                    .map_err(|e| FileError::Internal(e.to_string()))?
                    .map_err(FileError::Internal)?;
                Some(hash)
            }
        };
        let new = NewShare {
            id: random_id(),
            owner: caller.owner,
            path: path.clone(),
            number: (version != 0).then_some(version),
            password_hash,
            ttl,
        };
        match self.meta.create_share(&new).await? {
            Some(row) => Ok(self.view(row)),
            None if version != 0 => Err(FileError::VersionNotFound { path, version }),
            None => Err(FileError::NotFound(path)),
        }
    }

    /// The caller's links, newest first.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<ShareView>, FileError> {
        let rows = self.meta.shares(caller.owner).await?;
        Ok(rows.into_iter().map(|r| self.view(r)).collect())
    }

    /// Ends the caller's link `id`.
    pub async fn revoke(&self, caller: &Caller, id: &str) -> Result<(), FileError> {
        if self.meta.revoke_share(caller.owner, id).await? {
            Ok(())
        } else {
            Err(FileError::NotFound(format!("share link {id}")))
        }
    }

    /// The live link `token` names, its password checked.
    pub async fn resolve(
        &self,
        token: &str,
        password: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Result<ShareView, ShareError> {
        let id = self.auth.share_id(token).ok_or(ShareError::NotFound)?;
        let row = self.meta.share(&id).await.map_err(FileError::from)?;
        let view = self.view(row.ok_or(ShareError::NotFound)?);
        if view.row.revoked {
            return Err(ShareError::Revoked);
        }
        if view.expired {
            return Err(ShareError::Expired);
        }
        if let Some(hash) = &view.row.password_hash {
            let given = password.ok_or(ShareError::PasswordRequired)?;
            self.auth
                .check_share_password(&view.row.id, hash, given, addr)
                .await?;
        }
        Ok(view)
    }

    /// Opens the version a resolved link names, for reading.
    pub async fn open(&self, view: &ShareView) -> Result<(FileVersion, Vec<ChunkRef>), FileError> {
        let owner = Caller {
            owner: view.row.owner,
            name: view.row.owner_name.clone(),
            role: Role::User,
            login: None,
        };
        self.files
            .open(&owner, &view.row.path, Some(view.row.number))
            .await
    }

    pub fn files(&self) -> &Files {
        &self.files
    }
}
