//! Disaster recovery for the embedded metadata: consistent snapshots of the
//! SQLite database, compressed and written to every storage node, and the
//! restore that rebuilds the database from them.
//!
//! - [`take`]: one snapshot, its upload to the nodes, the retention pass,
//!   and the `snapshot` worker that runs them on a schedule.
//! - [`restore`]: `coffer-server meta restore`.
//!
//! Snapshots live under [`PREFIX`], outside the `chunks/` prefix that gc,
//! repair and scrub walk, so none of them ever treats one as a chunk. An
//! object's name says which cluster it belongs to, when it was taken and
//! its MAC: `coffer/snapshots/<cluster>/<YYYYMMDDTHHMMSS.mmmZ>-<mac>.sqlite.zst`.
//!
//! The MAC is a keyed BLAKE3 over the cluster, the time and the bytes,
//! keyed by a key derived from the server's signing key ([`mac_key`]). A
//! node (or anyone who can write to one) without that key can neither
//! plant a snapshot, nor re-date or re-file a genuine one; a restore needs
//! the signing key the server ran with (`COFFER_AUTH_KEY`, or `auth.key`
//! kept from the data dir).

pub mod restore;
pub mod take;

use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// Where snapshots live on every node.
pub const PREFIX: &str = "coffer/snapshots/";
const SUFFIX: &str = ".sqlite.zst";

/// A snapshot object's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotName {
    pub cluster: String,
    pub taken_at: OffsetDateTime,
    /// The MAC of the snapshot ([`SnapshotName::hasher`]), hex.
    pub mac: String,
}

/// The key of snapshot MACs, derived from the server's token-signing key.
pub fn mac_key(signing_key: &[u8]) -> [u8; 32] {
    blake3::derive_key("coffer 2026-12 metadata snapshot mac", signing_key)
}

fn stamp_format() -> Vec<time::format_description::BorrowedFormatItem<'static>> {
    time::format_description::parse_borrowed::<2>(
        "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z",
    )
    .expect("a valid format")
}

impl SnapshotName {
    /// The time as the name spells it.
    fn stamp(&self) -> String {
        self.taken_at
            .to_offset(time::UtcOffset::UTC)
            .format(&stamp_format())
            .expect("a formattable time")
    }

    /// The object key on every node.
    pub fn key(&self) -> String {
        format!(
            "{PREFIX}{}/{}-{}{SUFFIX}",
            self.cluster,
            self.stamp(),
            self.mac
        )
    }

    /// A hasher that, fed the snapshot's bytes, gives its MAC under `key`:
    /// keyed BLAKE3 over the cluster, the time and then the bytes.
    pub fn hasher(&self, key: &[u8; 32]) -> blake3::Hasher {
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(b"coffer snapshot v1\0");
        h.update(self.cluster.as_bytes());
        h.update(b"\0");
        h.update(self.stamp().as_bytes());
        h.update(b"\0");
        h
    }

    /// The name in `key`, if it is a snapshot's.
    pub fn parse(key: &str) -> Option<Self> {
        let (cluster, file) = key.strip_prefix(PREFIX)?.split_once('/')?;
        let (stamp, mac) = file.strip_suffix(SUFFIX)?.split_once('-')?;
        let id_like = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_like(cluster) || mac.len() != 64 || !id_like(mac) {
            return None;
        }
        let taken_at = time::PrimitiveDateTime::parse(stamp, &stamp_format())
            .ok()?
            .assume_utc();
        Some(Self {
            cluster: cluster.to_string(),
            taken_at,
            mac: mac.to_string(),
        })
    }
}

/// Which snapshots to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// The newest this many (at least one).
    pub last: usize,
    /// Besides, the newest of each UTC day for this many days.
    pub daily_days: u32,
}

impl Default for Keep {
    fn default() -> Self {
        Self {
            last: 24,
            daily_days: 7,
        }
    }
}

/// The snapshots of `names` (one cluster's) that retention removes at
/// `now`: all but the newest `keep.last`, and the newest of each of the
/// last `keep.daily_days` days.
pub fn expired(names: &[SnapshotName], keep: Keep, now: OffsetDateTime) -> Vec<SnapshotName> {
    let mut sorted: Vec<&SnapshotName> = names.iter().collect();
    sorted.sort_by_key(|n| std::cmp::Reverse(n.taken_at));
    let daily_from = now - time::Duration::days(i64::from(keep.daily_days));
    let mut days_kept = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, n) in sorted.into_iter().enumerate() {
        let newest_of_day = n.taken_at >= daily_from && days_kept.insert(n.taken_at.date());
        if i < keep.last.max(1) || newest_of_day {
            continue;
        }
        out.push(n.clone());
    }
    out
}

/// The last snapshot this server took or found on the nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub key: String,
    /// RFC 3339.
    pub taken_at: String,
    /// The compressed object.
    pub bytes: u64,
    /// The database it holds.
    pub database_bytes: u64,
    /// Nodes it was written to, of how many.
    pub nodes: u32,
    pub of_nodes: u32,
}

/// What status shows about snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotState {
    pub last: Option<SnapshotInfo>,
    /// Snapshots that could not be taken or landed on no node.
    pub failures: u64,
    pub last_error: String,
    /// RFC 3339.
    pub last_error_at: String,
}

/// Shared between the worker and the status report.
pub type SnapshotLog = Arc<Mutex<SnapshotState>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    fn name(s: &str) -> SnapshotName {
        SnapshotName {
            cluster: "c0ffee".into(),
            taken_at: at(s),
            mac: "a".repeat(64),
        }
    }

    #[test]
    fn names_round_trip_and_reject_what_is_not_a_snapshot() {
        let n = name("2026-11-26T23:42:00.123Z");
        let key = n.key();
        assert_eq!(
            key,
            format!(
                "coffer/snapshots/c0ffee/20261126T234200.123Z-{}.sqlite.zst",
                "a".repeat(64)
            )
        );
        assert_eq!(SnapshotName::parse(&key), Some(n));
        for bad in [
            "chunks/ab/abcdef",
            "coffer/cluster-id",
            "coffer/snapshots/c0ffee/20261126T234200.123Z-short.sqlite.zst",
            "coffer/snapshots/c0/ffee/20261126T234200.123Z-x.sqlite.zst",
            "coffer/snapshots/c0ffee/notatime-x.sqlite.zst",
        ] {
            assert_eq!(SnapshotName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn retention_keeps_the_newest_and_one_a_day_for_a_week() {
        let now = at("2026-11-26T12:00:00Z");
        let mut names = Vec::new();
        // Hourly for ten days.
        for h in 0..240 {
            names.push(SnapshotName {
                taken_at: now - time::Duration::hours(h),
                ..name("2026-11-26T12:00:00Z")
            });
        }
        let gone = expired(&names, Keep::default(), now);
        let kept: Vec<_> = names.iter().filter(|n| !gone.contains(n)).collect();
        // 24 newest, plus the newest of each of the 7 days before (the
        // newest of today and yesterday are among the 24 already).
        let days: std::collections::BTreeSet<_> = kept.iter().map(|n| n.taken_at.date()).collect();
        assert_eq!(kept.len(), 24 + 6, "{kept:?}");
        assert_eq!(days.len(), 8);
        assert!(kept
            .iter()
            .all(|n| n.taken_at >= now - time::Duration::days(7)));

        let three = Keep {
            last: 3,
            daily_days: 0,
        };
        assert_eq!(expired(&names[..5], three, now).len(), 2);
        // Never the last one, whatever the setting.
        let none = Keep {
            last: 0,
            daily_days: 0,
        };
        assert_eq!(expired(&names[..1], none, now), vec![]);
    }
}
