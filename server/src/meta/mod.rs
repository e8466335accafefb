//! The metadata layer: [`MetaStore`], whose methods are domain operations
//! (commit a version, open a session, hold a chunk, claim chunks for
//! deletion, take a worker lease…), the rows and refusals they speak in,
//! and the engines under it: [`sqlite`] (the embedded default) and
//! [`postgres`] (several servers on one database), each an adapter of the
//! [`sql`] seam over which every operation is written once.
//!
//! Nothing outside the adapters names a database crate. Errors are
//! [`MetaError`] kinds (busy, full, unreachable, a refusal carrying its
//! data…), so callers decide on meaning, not on SQLSTATEs.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod postgres;
pub mod sql;
pub mod sqlite;
mod store;

pub use store::MetaStore;

use coffer_proto::put::PutMode;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Owner ids: a user's id is the owner id of their files. With authentication switched off every
/// file belongs to [`DEFAULT_OWNER`], which the first user created takes over.
pub type OwnerId = i64;
pub const DEFAULT_OWNER: OwnerId = 1;

/// What a user may do beyond their own files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Also the admin service, `/metrics` and user administration.
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// A user account: an owner who can log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: OwnerId,
    pub name: String,
    pub role: Role,
    /// PHC string (argon2id).
    pub password_hash: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A live login: a refresh token (stored as its hash) of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRow {
    pub id: String,
    pub user: UserRow,
    pub token_hash: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// The setting that holds the most versions one owner may keep (see
/// [`MetaStore::set_setting`]); unset: no limit.
pub const MAX_VERSIONS: &str = "max_versions_per_owner";

/// Content hashes of chunk lists given as `(key, chunk id)` rows ordered
/// by key, then by position (a key with no chunk has a `None` row): what
/// both backends' migration to the chunk-id content hash recomputes.
pub fn content_hashes(
    rows: impl IntoIterator<Item = (String, Option<String>)>,
) -> Result<Vec<(String, String)>, MetaError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut cur: Option<(String, coffer_proto::chunking::ContentHasher)> = None;
    for (key, chunk) in rows {
        if cur.as_ref().is_none_or(|(k, _)| *k != key) {
            out.extend(cur.take().map(|(k, h)| (k, h.finish())));
            cur = Some((key, Default::default()));
        }
        if let (Some(c), Some((_, h))) = (chunk, cur.as_mut()) {
            h.push_id(&c)
                .map_err(|e| MetaError::Backend(e.to_string()))?;
        }
    }
    out.extend(cur.take().map(|(k, h)| (k, h.finish())));
    Ok(out)
}

/// The metadata store every part of the server shares.
pub type Meta = Arc<MetaStore>;

/// An unclaimed `pending` chunk row (an upload writing the chunk) is taken for abandoned only after
/// this long, whatever gc's grace period: a chunk write never takes this long, so gc never collects
/// a chunk an upload is still writing.
pub const PENDING_FLOOR: Duration = Duration::from_secs(600);

#[derive(Debug, Error)]
pub enum MetaError {
    /// Contention that outlasted the retries (locked database,
    /// serialization failures): trying again later can help.
    #[error("metadata store busy: {0}")]
    Busy(String),
    /// The database cannot take more data.
    #[error("metadata store full: {0}")]
    Full(String),
    /// The database cannot be reached.
    #[error("metadata store unreachable: {0}")]
    Unreachable(String),
    /// A commit named chunks that are not stored.
    #[error("{0} chunk(s) of the upload are not stored yet")]
    MissingChunks(usize),
    /// A chunk was listed with another size than the stored one.
    #[error("chunk {id} is {stored} bytes, not {declared}")]
    ChunkSize {
        id: String,
        stored: u32,
        declared: u32,
    },
    /// The chunk is being deleted by gc, or the writer's hold on it was
    /// lost: write it again once the deletion is over.
    #[error("chunk {0} is being deleted; store it again")]
    ChunkDeleting(String),
    /// A finished upload's version is gone (removed by retention, or the
    /// file purged), so finishing it again cannot return it.
    #[error(
        "upload {session} was committed as version {version} of {path:?}, which no longer exists"
    )]
    CommittedVersionGone {
        session: String,
        path: String,
        version: u64,
    },
    /// What the request would create exists already.
    #[error("{0}")]
    Conflict(Conflict),
    /// A file and a folder would share a name (`a` and `a/b`), or a move's
    /// target is taken.
    #[error("{0}")]
    PathConflict(PathConflict),
    /// A per-user limit (quota, open uploads, versions) would be crossed.
    #[error("{0}")]
    Limit(Limit),
    /// A conditional write named a base version the file has moved on
    /// from; nothing was changed.
    #[error("{0}")]
    Stale(Stale),
    /// A change-feed cursor older than the changes kept (or newer than
    /// any): the client must list everything again.
    #[error("{0}")]
    CursorGone(CursorGone),
    /// A streamed upload expired: no chunk came within its window.
    #[error("upload {0} expired: no data came for too long")]
    StreamGone(String),
    /// The backend does not do this; the message says what does.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else the backend reported; not expected to go away by
    /// retrying.
    #[error("metadata store: {0}")]
    Backend(String),
}

/// One file's answer in a batch: what it made, or its own refusal.
pub type PerFile<T> = Result<T, MetaError>;

/// A session opened, and the chunks it still lacks.
pub type Opened = (SessionRow, Vec<String>);

// What a refusal is about, as data; `api::status` words each for people
// (their `Display`) and names it for programs (a reason in the status
// details).

/// What exists already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// A user of this name.
    User(String),
    /// An app password of this name, of the same user.
    AppPassword(String),
}

/// A name that is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathConflict {
    /// `path` cannot be created: `file` (one of its folders) is a file.
    NotAFolder { path: String, file: String },
    /// `path` cannot be a file: it is a folder holding `inside`.
    IsAFolder { path: String, inside: String },
    /// A move's target `path` is a live file (or a folder).
    Taken { path: String },
    /// `path` cannot be created: its folder `parent` does not exist (only
    /// where a folder must be made first, as WebDAV asks).
    NoParent { path: String, parent: String },
}

/// A per-user limit a write would cross.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// `more` bytes on top of `used` would cross `quota`.
    Quota { used: u64, more: u64, quota: u64 },
    /// The user has `max` uploads open.
    Uploads { max: u32 },
    /// The user keeps `max` versions.
    Versions { max: u64 },
}

/// A conditional write whose `base` is not `path`'s `latest` version (0:
/// no file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub path: String,
    pub base: u64,
    pub latest: u64,
}

/// A change-feed `cursor` that cannot be served against the owner's
/// latest change `head`: ahead of it, or older than the changes kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorGone {
    pub cursor: u64,
    pub head: u64,
}

/// A chunk written into a pack: where its bytes start there, and the hold
/// its writer took ([`MetaStore::hold_chunk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub chunk: ChunkRef,
    pub hold: String,
    pub offset: u64,
}

/// Where a packed chunk's bytes are: in pack `pack` (a chunk id) from
/// `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedAt {
    pub pack: String,
    pub offset: u64,
}

/// A pack read back from the nodes: its size, the nodes holding it, and
/// from its own index each chunk in it (id, offset, length, and whether
/// the chunk is also an object of its own on some node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPack {
    pub pack: ChunkRef,
    pub nodes: Vec<String>,
    pub entries: Vec<(String, u64, u32, bool)>,
}

/// A chunk in a file's ordered chunk list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    pub id: String,
    pub size: u32,
}

/// One version of one file, as listings and metadata show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub file_id: i64,
    pub path: String,
    pub number: u64,
    pub size: u64,
    pub hash: String,
    /// RFC 3339, UTC, millisecond precision.
    pub created_at: String,
    pub deleted: bool,
    pub chunk_count: u32,
    /// The content's modification time as the uploading client gave it
    /// (RFC 3339, UTC, up to nanoseconds), if it did.
    pub modified: Option<String>,
    /// Checksums of the content the server computed as it arrived over
    /// WebDAV, as ownCloud's clients spell them (`SHA1:hex MD5:hex`).
    pub checksums: Option<String>,
}

/// Replica counts of a version's distinct chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    pub chunks: u32,
    pub fully_replicated: u32,
    pub under_replicated: u32,
    pub unavailable: u32,
}

impl HealthCounts {
    /// Counts one chunk with `good` verified copies against a target of `r`.
    pub fn add(&mut self, good: usize, r: usize) {
        self.chunks += 1;
        match good {
            0 => self.unavailable += 1,
            g if g >= r => self.fully_replicated += 1,
            _ => self.under_replicated += 1,
        }
    }
}

/// What a new version is made of.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub owner: OwnerId,
    pub path: String,
    pub size: u64,
    pub hash: String,
    pub chunks: Vec<ChunkRef>,
    pub uploader: String,
    /// The streamed upload whose chunk references this commit replaces
    /// (see [`MetaStore::open_stream`]); closed in the same transaction.
    pub stream: Option<String>,
    /// The upload session this commit completes: what it holds reserved
    /// against the quota stops counting.
    pub session: Option<String>,
    /// What the commit expects at the path.
    pub mode: PutMode,
    /// The content's modification time, as the client gave it.
    pub modified: Option<String>,
    /// See [`VersionRow::checksums`].
    pub checksums: Option<String>,
}

impl NewVersion {
    /// The version a finished session commits.
    pub fn of_session(s: &SessionRow, uploader: &str) -> Self {
        Self {
            owner: s.owner,
            path: s.path.clone(),
            size: s.size,
            hash: s.hash.clone(),
            chunks: s.chunks.clone(),
            uploader: uploader.to_string(),
            stream: None,
            session: Some(s.id.clone()),
            mode: PutMode::Overwrite,
            modified: s.modified.clone(),
            checksums: None,
        }
    }

    /// The upload (session or stream) this commit completes, whose
    /// reservation it replaces.
    pub fn completes(&self) -> Option<&str> {
        self.session.as_deref().or(self.stream.as_deref())
    }

    /// The version that makes `old` (with its `chunks`) the newest again.
    pub fn restoring(
        old: VersionRow,
        chunks: Vec<ChunkRef>,
        owner: OwnerId,
        uploader: &str,
    ) -> Self {
        Self {
            owner,
            path: old.path,
            size: old.size,
            hash: old.hash,
            chunks,
            uploader: uploader.to_string(),
            stream: None,
            session: None,
            mode: PutMode::Overwrite,
            modified: old.modified,
            checksums: old.checksums,
        }
    }
}

/// What finishing session `s` again returns, given what is now stored as the version `number` it
/// committed: that very version, or an error. Retention may have removed it, and a purged file's
/// path may hold other content by now; committing again would put stale content on top.
pub fn finished_again(
    s: &SessionRow,
    number: u64,
    now_there: Option<VersionRow>,
) -> Result<VersionRow, MetaError> {
    match now_there {
        Some(row) if row.hash == s.hash && row.size == s.size => Ok(row),
        _ => Err(MetaError::CommittedVersionGone {
            session: s.id.clone(),
            path: s.path.clone(),
            version: number,
        }),
    }
}

/// `rows` paired with their health, from `(file id, version, good copies)`
/// of each distinct chunk of theirs, against `r` good copies a chunk.
pub fn attach_health(
    rows: Vec<VersionRow>,
    found: impl IntoIterator<Item = (i64, i64, usize)>,
    r: usize,
) -> Vec<(VersionRow, HealthCounts)> {
    let mut health = std::collections::HashMap::<(i64, i64), HealthCounts>::new();
    for (file, number, good) in found {
        health.entry((file, number)).or_default().add(good, r);
    }
    rows.into_iter()
        .map(|v| {
            let h = health
                .get(&(v.file_id, v.number as i64))
                .copied()
                .unwrap_or_default();
            (v, h)
        })
        .collect()
}

/// What a client declares when it opens an upload session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub owner: OwnerId,
    pub path: String,
    pub size: u64,
    pub hash: String,
    pub chunks: Vec<ChunkRef>,
    pub ttl: Duration,
    /// The most open (unfinished, unexpired) sessions the owner may have;
    /// opening one more is [`MetaError::Limit`].
    pub max_open: u32,
    /// The modification time the version will carry.
    pub modified: Option<String>,
}

/// One entry of an owner's change feed: a version committed (a commit, restore or the arriving end
/// of a move), or a file deleted (or moved away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// Per owner, from 1, one more for every change: no gaps.
    pub seq: u64,
    pub path: String,
    pub deleted: bool,
    /// The version committed; for a delete, the file's latest.
    pub version: u64,
    pub size: u64,
    pub hash: String,
    /// RFC 3339, UTC.
    pub at: String,
    /// The version's modification time, if its client gave one.
    pub modified: Option<String>,
}

/// How long the change feed keeps entries; an older cursor must rescan.
pub const CHANGES_KEPT: Duration = Duration::from_secs(90 * 24 * 3600);

/// Whether a page of changes after `after` (the first `first`, or none) can be served against the
/// owner's `head`; the error tells the client to list everything again.
pub fn check_cursor(after: u64, first: Option<u64>, head: u64) -> Result<(), MetaError> {
    if after > head || (after < head && first != Some(after + 1)) {
        return Err(MetaError::CursorGone(CursorGone {
            cursor: after,
            head,
        }));
    }
    Ok(())
}

/// What an owner's retained versions take, and their quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Logical bytes: the sizes of every retained version, deleted files'
    /// too (they are restorable).
    pub used: u64,
    /// Bytes open uploads hold reserved: each open session's declared
    /// size, each streamed upload's chunks stored so far. They count
    /// against the quota with `used`.
    pub reserved: u64,
    /// `None`: no quota.
    pub quota: Option<u64>,
}

/// A share link to create.
#[derive(Debug, Clone)]
pub struct NewShare {
    /// Random; names the link (the URL's token carries it, with a MAC).
    pub id: String,
    pub owner: OwnerId,
    pub path: String,
    /// `None`: the latest version now.
    pub number: Option<u64>,
    /// PHC string; `None`: no password.
    pub password_hash: Option<String>,
    pub ttl: Duration,
}

/// A WebDAV dead property of a file or folder: its namespace and name,
/// and its XML (`None` in a patch: remove it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadProp {
    pub ns: String,
    pub name: String,
    pub prefix: Option<String>,
    pub xml: Option<String>,
}

/// A WebDAV lock as stored. Paths are file paths (`""`: the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    pub token: String,
    pub path: String,
    pub principal: Option<String>,
    /// The `<owner>` element the client gave, as XML.
    pub owner_xml: Option<String>,
    pub shared: bool,
    /// The lock covers everything inside the folder too.
    pub deep: bool,
    pub timeout_ms: Option<u64>,
    /// When it lapses, in milliseconds since the Unix epoch (never: `None`).
    pub expires_at_ms: Option<i64>,
}

/// A lock to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLock {
    pub owner: OwnerId,
    pub path: String,
    pub principal: Option<String>,
    pub owner_xml: Option<String>,
    pub timeout: Option<Duration>,
    pub shared: bool,
    pub deep: bool,
}

/// An app password as stored: its secret only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPasswordRow {
    pub id: String,
    pub name: String,
    pub secret_hash: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A share link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRow {
    pub id: String,
    pub owner: OwnerId,
    pub owner_name: String,
    pub path: String,
    pub number: u64,
    pub password_hash: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: String,
    pub revoked: bool,
}

/// An open upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub owner: OwnerId,
    pub path: String,
    pub size: u64,
    pub hash: String,
    pub expires_at: String,
    pub chunks: Vec<ChunkRef>,
    /// The modification time the version will carry.
    pub modified: Option<String>,
}

/// Where a chunk stands in an upload session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkSlot {
    /// The session is not open (unknown, expired, or another owner's).
    NoSession,
    /// The session is open but does not list this chunk.
    NotListed,
    /// The session lists this chunk with this size.
    Declared(u32),
}

/// The answer to "is this chunk stored?" asked before writing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkHold {
    /// Stored already; its age was refreshed, so gc spares it for a grace
    /// period.
    Stored,
    /// Not stored: write it, then [`MetaStore::record_chunk`] with this
    /// hold. Until then gc neither collects the chunk nor sweeps its
    /// objects as orphans.
    Write(String),
    /// Gc is deleting the chunk's objects: wait, then ask again.
    Deleting,
}

/// A reference from a streamed upload to one of its chunks.
#[derive(Debug, Clone)]
pub struct StreamRef {
    pub stream: String,
    pub index: u32,
}

/// What one node was found to hold of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaHealth {
    Ok,
    Missing,
    Corrupt,
}

impl ReplicaHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaHealth::Ok => "ok",
            ReplicaHealth::Missing => "missing",
            ReplicaHealth::Corrupt => "corrupt",
        }
    }
}

/// As SQL names it: a quoted literal, so the partial index on bad
/// replicas serves every plan.
impl std::fmt::Display for ReplicaHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}'", self.as_str())
    }
}

/// A replica outcome to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaOutcome {
    pub chunk_id: String,
    pub node: String,
    pub state: ReplicaHealth,
}

/// The order of a folder's files in a sorted listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// By path, which within a folder is by name (byte order).
    Name,
    Size,
    /// By the newest version's upload time.
    Time,
}

/// Where a sorted listing's page starts: after the row with this key and
/// path (from the start when the path is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct After {
    pub key: i64,
    pub path: String,
}

/// A sorted listing's order: its key, and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sorted {
    pub by: SortKey,
    pub descending: bool,
}

/// Which versions to keep. The newest version of a live file is always
/// kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many versions per file (`None`: all).
    pub keep_last: Option<u32>,
    /// Keep versions younger than this even beyond `keep_last`.
    pub keep_younger_than: Option<Duration>,
    /// Files deleted longer ago than this are purged with all their
    /// versions (`None`: deleted files are kept).
    pub purge_deleted_after: Option<Duration>,
}

/// Whole-table figures for the operator's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaReport {
    /// (node, good copies, their bytes).
    pub usage: Vec<(String, u64, u64)>,
    /// Stored chunks.
    pub chunks: u64,
    /// Stored chunks with fewer than R good copies.
    pub under_replicated: u64,
}

/// Who holds a worker's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// Opens the metadata store: PostgreSQL for a `postgres://` (or
/// `postgresql://`) URL, else SQLite at `sqlite_path`.
pub async fn open(
    database_url: Option<&str>,
    sqlite_path: &std::path::Path,
) -> Result<Meta, MetaError> {
    match database_url {
        Some(url) if postgres::is_url(url) => Ok(Arc::new(postgres::connect(url).await?)),
        Some(url) => Err(MetaError::Backend(format!(
            "unsupported database URL {:?}: only postgres:// is supported (leave it unset for SQLite)",
            redact(url)
        ))),
        None => Ok(Arc::new(sqlite::open(sqlite_path)?)),
    }
}

/// A database URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `t` as RFC 3339 in UTC with exactly three fractional digits, so that
/// timestamps compare correctly as text.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A time column's milliseconds since the Unix epoch as RFC 3339 (see
/// [`rfc3339`]).
pub fn ms_rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    rfc3339(t)
}

/// Milliseconds since the Unix epoch of `s`: a number of them, or an
/// RFC 3339 time.
pub fn parse_ms(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Now, as RFC 3339 in UTC with millisecond precision.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// A new random id (sessions, holds).
pub fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://coffer:s3cret@db:5432/coffer"),
            "postgres://coffer:***@db:5432/coffer"
        );
        assert_eq!(redact("postgres://db/coffer"), "postgres://db/coffer");
    }
}
