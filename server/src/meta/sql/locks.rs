//! WebDAV locks (RFC 4918 class 2), in the database so that every server
//! of it honours them: exclusive or shared, on one resource or a whole
//! folder (deep), with time-outs on the engine's clock. The rules are
//! plain functions over the locks that bear on a path ([`conflict_above`],
//! [`conflict_below`]); each operation reads those locks and acts in one
//! transaction under the owner's row lock.

use super::limits;
use super::tx::{list, Row, Tx};
use super::{inside, ByPath};
use crate::meta::{LockRow, MetaError, NewLock, OwnerId};

/// `path` and every folder above it, the root (`""`) first.
fn path_and_above(path: &str) -> Vec<&str> {
    let mut out = vec![""];
    out.extend(path.match_indices('/').map(|(i, _)| &path[..i]));
    if !path.is_empty() {
        out.push(path);
    }
    out
}

const SELECT_LOCK: &str = "SELECT token, path, principal, owner_xml, shared, deep, timeout_ms, \
     expires_at FROM dav_locks";

fn lock_row(r: &Row) -> LockRow {
    LockRow {
        token: r.get(0),
        path: r.get(1),
        principal: r.get(2),
        owner_xml: r.get(3),
        shared: r.get(4),
        deep: r.get(5),
        timeout_ms: r.get(6),
        expires_at_ms: r.get(7),
    }
}

/// The live locks on `path` and the folders above it, and with `below`
/// those inside it too, of `owner`.
fn bearing_on(
    tx: &dyn Tx,
    owner: OwnerId,
    path: &str,
    below: bool,
) -> Result<Vec<LockRow>, MetaError> {
    // An empty range when only what is above counts.
    let (lo, hi) = if below {
        inside(path)
    } else {
        (String::new(), String::new())
    };
    Ok(tx
        .query(
            &format!(
                "{SELECT_LOCK} WHERE owner_id = $1
                   AND (path IN (SELECT value FROM list_of($2)) OR (path > $3 AND path < $4))
                   AND (expires_at IS NULL OR expires_at > now_ms())
                 ORDER BY path, created_at"
            ),
            &[&owner, &list(&path_and_above(path)), &lo, &hi],
        )?
        .iter()
        .map(lock_row)
        .collect())
}

/// Who asks, for the lock rules: the tokens they submitted and their
/// principal (`None`: a token counts whoever submits it), and whether a
/// shared lock in the way is fine (they ask for one themselves).
pub struct Asking<'a> {
    pub principal: Option<&'a str>,
    pub tokens: &'a [String],
    pub shared_ok: bool,
}

impl Asking<'_> {
    /// Whether they hold lock `l`.
    fn holds(&self, l: &LockRow) -> bool {
        self.tokens.contains(&l.token)
            && (self.principal.is_none() || self.principal == l.principal.as_deref())
    }
}

/// The lock that stops a request on `path` (or, with `shared_ok`, a new
/// shared lock on it), of the locks on it and above it: an exclusive lock
/// they do not hold, or, when they hold none of them, a shared one. Locks
/// above `path` bear on it only if they are deep.
pub fn conflict_above(locks: &[LockRow], path: &str, who: &Asking) -> Option<LockRow> {
    let mut holds = false;
    let mut first_shared: Option<&LockRow> = None;
    let above: Vec<&str> = path_and_above(path);
    for l in locks.iter().filter(|l| above.contains(&l.path.as_str())) {
        if l.path != path && !l.deep {
            continue;
        }
        if who.holds(l) {
            holds = true;
        } else if !l.shared {
            return Some(l.clone());
        } else if !who.shared_ok {
            first_shared.get_or_insert(l);
        }
    }
    match (holds, first_shared) {
        (false, Some(l)) => Some(l.clone()),
        _ => None,
    }
}

/// The lock on `path` or inside it that stops a request on the whole
/// tree: any they do not hold (with `shared_ok`, exclusive ones only).
pub fn conflict_below(locks: &[LockRow], path: &str, who: &Asking) -> Option<LockRow> {
    let (lo, hi) = inside(path);
    locks
        .iter()
        .filter(|l| l.path == path || (l.path > lo && l.path < hi))
        .find(|l| (!l.shared || !who.shared_ok) && !who.holds(l))
        .cloned()
}

/// See [`crate::meta::MetaStore::lock`].
pub fn lock(tx: &dyn Tx, l: &NewLock) -> Result<Result<LockRow, LockRow>, MetaError> {
    limits::lock_owner(tx, l.owner)?;
    tx.execute(
        "DELETE FROM dav_locks WHERE owner_id = $1 AND expires_at <= now_ms()",
        &[&l.owner],
    )?;
    let locks = bearing_on(tx, l.owner, &l.path, l.deep)?;
    // A new lock holds none of the others.
    let who = Asking {
        principal: None,
        tokens: &[],
        shared_ok: l.shared,
    };
    let conflict = conflict_above(&locks, &l.path, &who).or_else(|| {
        l.deep
            .then(|| conflict_below(&locks, &l.path, &who))
            .flatten()
    });
    if let Some(c) = conflict {
        return Ok(Err(c));
    }
    let token = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let timeout = l.timeout.map(super::ms);
    let row = tx.query_one(
        "INSERT INTO dav_locks (token, owner_id, path, principal, owner_xml, shared, deep,
                                timeout_ms, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now_ms() + $8, now_ms())
         RETURNING token",
        &[
            &token,
            &l.owner,
            &l.path,
            &l.principal,
            &l.owner_xml,
            &l.shared,
            &l.deep,
            &timeout,
        ],
    )?;
    let token: String = row.get(0);
    Ok(Ok(by_token(tx, &token)?.expect("the lock was just made")))
}

fn by_token(tx: &dyn Tx, token: &str) -> Result<Option<LockRow>, MetaError> {
    Ok(tx
        .query_opt(&format!("{SELECT_LOCK} WHERE token = $1"), &[&token])?
        .as_ref()
        .map(lock_row))
}

/// The live lock `token` of `owner` if it is on `path` or a folder above
/// it.
fn find(
    tx: &dyn Tx,
    owner: OwnerId,
    path: &str,
    token: &str,
) -> Result<Option<LockRow>, MetaError> {
    Ok(bearing_on(tx, owner, path, false)?
        .into_iter()
        .find(|l| l.token == token))
}

/// See [`crate::meta::MetaStore::unlock`].
pub fn unlock(tx: &dyn Tx, owner: OwnerId, path: &str, token: &str) -> Result<bool, MetaError> {
    if find(tx, owner, path, token)?.is_none() {
        return Ok(false);
    }
    tx.execute("DELETE FROM dav_locks WHERE token = $1", &[&token])?;
    Ok(true)
}

/// See [`crate::meta::MetaStore::refresh_lock`].
pub fn refresh(
    tx: &dyn Tx,
    owner: OwnerId,
    path: &str,
    token: &str,
    timeout: Option<std::time::Duration>,
) -> Result<Option<LockRow>, MetaError> {
    if find(tx, owner, path, token)?.is_none() {
        return Ok(None);
    }
    let timeout = timeout.map(super::ms);
    tx.execute(
        "UPDATE dav_locks SET timeout_ms = $2, expires_at = now_ms() + $2 WHERE token = $1",
        &[&token, &timeout],
    )?;
    by_token(tx, token)
}

/// See [`crate::meta::MetaStore::check_locks`].
pub fn check(
    tx: &dyn Tx,
    owner: OwnerId,
    path: &str,
    principal: Option<&str>,
    deep: bool,
    tokens: &[String],
) -> Result<Option<LockRow>, MetaError> {
    let locks = bearing_on(tx, owner, path, deep)?;
    let who = Asking {
        principal,
        tokens,
        shared_ok: false,
    };
    Ok(conflict_above(&locks, path, &who)
        .or_else(|| deep.then(|| conflict_below(&locks, path, &who)).flatten()))
}

/// See [`crate::meta::MetaStore::discover_locks`].
pub fn discover(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<Vec<LockRow>, MetaError> {
    Ok(bearing_on(tx, owner, path, false)?
        .into_iter()
        .filter(|l| l.path == path || l.deep)
        .collect())
}

/// See [`crate::meta::MetaStore::drop_locks`].
pub fn drop_under(tx: &dyn Tx, owner: OwnerId, path: &str) -> Result<(), MetaError> {
    ByPath::DavLocks.delete_under(tx, owner, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(path: &str, token: &str, shared: bool, deep: bool) -> LockRow {
        LockRow {
            token: token.into(),
            path: path.into(),
            principal: Some("ann".into()),
            owner_xml: None,
            shared,
            deep,
            timeout_ms: None,
            expires_at_ms: None,
        }
    }

    fn asking<'a>(principal: Option<&'a str>, tokens: &'a [String], shared_ok: bool) -> Asking<'a> {
        Asking {
            principal,
            tokens,
            shared_ok,
        }
    }

    #[test]
    fn an_exclusive_lock_stops_others_unless_its_token_is_submitted() {
        let locks = [lock("a", "t1", false, false)];
        assert!(conflict_above(&locks, "a", &asking(Some("ann"), &[], false)).is_some());
        let held = ["t1".to_string()];
        assert!(conflict_above(&locks, "a", &asking(Some("ann"), &held, false)).is_none());
        // Another principal's request with the token is still stopped.
        assert!(conflict_above(&locks, "a", &asking(Some("bob"), &held, false)).is_some());
    }

    #[test]
    fn only_deep_locks_bear_on_what_is_below_them() {
        let shallow = [lock("d", "t1", false, false)];
        assert!(conflict_above(&shallow, "d/f", &asking(None, &[], false)).is_none());
        let deep = [lock("d", "t1", false, true)];
        assert!(conflict_above(&deep, "d/f", &asking(None, &[], false)).is_some());
        let root = [lock("", "t1", false, true)];
        assert!(conflict_above(&root, "d/f", &asking(None, &[], false)).is_some());
    }

    #[test]
    fn shared_locks_admit_more_shared_locks_but_not_writes() {
        let locks = [lock("a", "t1", true, false)];
        assert!(conflict_above(&locks, "a", &asking(None, &[], true)).is_none());
        assert!(conflict_above(&locks, "a", &asking(None, &[], false)).is_some());
    }

    #[test]
    fn a_deep_request_is_stopped_by_a_lock_inside() {
        let locks = [
            lock("d/e/f", "t1", false, false),
            lock("dx", "t2", false, false),
        ];
        assert!(conflict_below(&locks, "d", &asking(None, &[], false)).is_some());
        // `dx` is not inside `d`.
        assert!(conflict_below(&locks[1..], "d", &asking(None, &[], false)).is_none());
        assert!(conflict_below(&locks, "", &asking(None, &[], false)).is_some());
    }

    #[test]
    fn paths_list_their_folders_from_the_root() {
        assert_eq!(path_and_above("a/b/c"), vec!["", "a", "a/b", "a/b/c"]);
        assert_eq!(path_and_above(""), vec![""]);
    }
}
