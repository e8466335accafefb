//! The metadata policy, written once over the narrow [`Engine`] / [`Tx`]
//! seam: an engine adapter ([`crate::meta::sqlite`],
//! [`crate::meta::postgres`]) only runs statements, and
//! [`crate::meta::MetaStore`] runs these operations on it.
//!
//! Each concern keeps its SQL beside its logic: [`chunks`], [`files`],
//! [`sessions`], [`changes`], [`limits`], [`gc`], [`accounts`],
//! [`shares`], [`ops`], and WebDAV's [`folders`], [`props`] and [`locks`].

pub mod accounts;
pub mod changes;
pub mod chunks;
pub mod files;
pub mod folders;
pub mod gc;
pub mod limits;
pub mod locks;
pub mod ops;
pub mod packs;
pub mod props;
pub mod sessions;
pub mod shares;
pub mod thumbs;
pub use files::like_escape;
pub mod tx;

use super::MetaError;
use async_trait::async_trait;
use std::any::Any;
use std::path::Path;
use std::time::Duration;
pub use tx::{Mode, Tx};

/// The time columns each engine's migration to integer milliseconds since
/// the Unix epoch turned from its old type, `(table, column, NOT NULL)`.
/// Tables made after it (folders, WebDAV's, app passwords) have integer
/// times from the start.
pub const TIME_COLUMNS: &[(&str, &str, bool)] = &[
    ("files", "deleted_at", false),
    ("chunks", "created_at", true),
    ("versions", "created_at", true),
    ("replicas", "checked_at", true),
    ("upload_sessions", "created_at", true),
    ("upload_sessions", "expires_at", true),
    ("gc_orphans", "first_seen", true),
    ("leases", "expires_at", true),
    ("owners", "created_at", false),
    ("logins", "created_at", true),
    ("logins", "expires_at", true),
    ("share_links", "created_at", true),
    ("share_links", "expires_at", true),
    ("share_links", "revoked_at", false),
    ("changes", "at", true),
];

/// What sorts inside folder `path` as `(lo, hi)`, both exclusive: `path/`
/// and `path0` (`0` follows `/`), or everything for the root (`""`).
pub fn inside(path: &str) -> (String, String) {
    if path.is_empty() {
        (String::new(), "\u{10FFFF}".to_string())
    } else {
        (format!("{path}/"), format!("{path}0"))
    }
}

/// The tables keyed by `(owner_id, path)` whose rows go, or move, with a
/// folder and everything inside it.
#[derive(Debug, Clone, Copy)]
pub enum ByPath {
    Folders,
    DeadProps,
    DavLocks,
}

impl ByPath {
    fn table(self) -> &'static str {
        match self {
            ByPath::Folders => "folders",
            ByPath::DeadProps => "dead_props",
            ByPath::DavLocks => "dav_locks",
        }
    }

    /// Deletes the rows of `path` and of everything inside it.
    pub fn delete_under(self, tx: &dyn Tx, owner: i64, path: &str) -> Result<(), MetaError> {
        let (lo, hi) = inside(path);
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE owner_id = $1 AND (path = $2 OR (path > $3 AND path < $4))",
                self.table()
            ),
            &[&owner, &path, &lo, &hi],
        )?;
        Ok(())
    }

    /// Gives the rows of `from` and of everything inside it `to` in place
    /// of `from`.
    pub fn move_under(
        self,
        tx: &dyn Tx,
        owner: i64,
        from: &str,
        to: &str,
    ) -> Result<(), MetaError> {
        let (lo, hi) = inside(from);
        tx.execute(
            &format!(
                "UPDATE {} SET path = CAST($5 AS TEXT) || substr(path, CAST($6 AS INTEGER))
                 WHERE owner_id = $1 AND (path = $2 OR (path > $3 AND path < $4))",
                self.table()
            ),
            &[
                &owner,
                &from,
                &lo,
                &hi,
                &to,
                &(from.chars().count() as i64 + 1),
            ],
        )?;
        Ok(())
    }
}

/// Milliseconds, as statements take durations and times.
pub fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// One operation's work on a [`Tx`], its result boxed (see
/// [`crate::meta::MetaStore`], which unboxes it).
pub type Work = Box<dyn FnOnce(&dyn Tx) -> Result<Box<dyn Any + Send>, MetaError> + Send>;

/// A SQL engine: runs one operation's statements, in the way `mode` asks.
/// An adapter implements this and nothing else.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// The engine's name, for logs and status.
    fn name(&self) -> &'static str;

    /// Runs `work` once, off the async threads, in a transaction (or on a
    /// connection) as `mode` asks; commits if it succeeds, rolls back if
    /// it fails.
    async fn run(&self, mode: Mode, work: Work) -> Result<Box<dyn Any + Send>, MetaError>;

    /// Writes a consistent copy of the whole database to the new file
    /// `dest`, while other transactions go on; see
    /// [`crate::meta::MetaStore::snapshot_into`].
    async fn snapshot_into(&self, dest: &Path) -> Result<(), MetaError>;
}
