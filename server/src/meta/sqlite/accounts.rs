//! Queries on user accounts and their logins.

use crate::meta::{random_id, LoginRow, MetaError, OwnerId, Role, Usage, UserRow, DEFAULT_OWNER};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

const SELECT_USER: &str =
    "SELECT id, name, role, password_hash, COALESCE(created_at, '') FROM owners";

fn user_row(r: &Row) -> rusqlite::Result<UserRow> {
    let role: String = r.get(2)?;
    Ok(UserRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::User),
        password_hash: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// See [`crate::meta::MetaStore::add_user`].
pub fn add(
    tx: &Transaction,
    name: &str,
    hash: &str,
    role: Role,
    now: &str,
) -> Result<UserRow, MetaError> {
    if by_name(tx, name)?.is_some() {
        return Err(MetaError::Conflict(format!("user {name:?} exists")));
    }
    // The first user takes over the files stored before accounts existed.
    let first = !tx
        .prepare_cached("SELECT 1 FROM owners WHERE password_hash IS NOT NULL OR removed = 1")?
        .exists([])?;
    let adopted = first
        && tx.execute(
            "UPDATE owners SET name = ?2, password_hash = ?3, role = ?4, created_at = ?5
             WHERE id = ?1",
            params![DEFAULT_OWNER, name, hash, role.as_str(), now],
        )? > 0;
    if !adopted {
        tx.execute(
            "INSERT INTO owners (name, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, hash, role.as_str(), now],
        )?;
    }
    by_name(tx, name)?.ok_or_else(|| MetaError::Backend("the new user vanished".into()))
}

/// The active user called `name`.
pub fn by_name(c: &Connection, name: &str) -> Result<Option<UserRow>, MetaError> {
    Ok(c.prepare_cached(&format!(
        "{SELECT_USER} WHERE name = ?1 AND password_hash IS NOT NULL AND removed = 0"
    ))?
    .query_row([name], user_row)
    .optional()?)
}

/// Every active user, by name.
pub fn list(c: &Connection) -> Result<Vec<UserRow>, MetaError> {
    let mut stmt = c.prepare_cached(&format!(
        "{SELECT_USER} WHERE password_hash IS NOT NULL AND removed = 0 ORDER BY name"
    ))?;
    let rows = stmt.query_map([], user_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sets a user's password hash and ends their logins.
pub fn set_password(tx: &Transaction, name: &str, hash: &str) -> Result<bool, MetaError> {
    let Some(user) = by_name(tx, name)? else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE owners SET password_hash = ?2 WHERE id = ?1",
        params![user.id, hash],
    )?;
    tx.execute("DELETE FROM logins WHERE owner_id = ?1", [user.id])?;
    Ok(true)
}

/// Removes a user: their logins end, their files are deleted (restorable
/// until retention purges them) and the name is free again.
pub fn remove(tx: &Transaction, name: &str, now: &str) -> Result<bool, MetaError> {
    let Some(user) = by_name(tx, name)? else {
        return Ok(false);
    };
    tx.execute("DELETE FROM logins WHERE owner_id = ?1", [user.id])?;
    tx.execute(
        "UPDATE files SET deleted_at = ?2 WHERE owner_id = ?1 AND deleted_at IS NULL",
        params![user.id, now],
    )?;
    tx.execute(
        "UPDATE owners SET removed = 1, password_hash = NULL, name = '#' || id || ' ' || name
         WHERE id = ?1",
        [user.id],
    )?;
    Ok(true)
}

/// Opens a login for `owner`; returns its id.
pub fn open_login(
    tx: &Transaction,
    owner: OwnerId,
    token_hash: &str,
    now: &str,
    expires_at: &str,
) -> Result<String, MetaError> {
    let id = random_id();
    tx.execute(
        "INSERT INTO logins (id, owner_id, token_hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, owner, token_hash, now, expires_at],
    )?;
    // Expired logins of anyone go as new ones come.
    tx.execute("DELETE FROM logins WHERE expires_at <= ?1", [now])?;
    Ok(id)
}

/// The live login `id` and its active user.
pub fn login(c: &Connection, id: &str, now: &str) -> Result<Option<LoginRow>, MetaError> {
    Ok(c.prepare_cached(
        "SELECT l.id, l.token_hash, l.expires_at,
                    o.id, o.name, o.role, o.password_hash, COALESCE(o.created_at, '')
             FROM logins l JOIN owners o ON o.id = l.owner_id
             WHERE l.id = ?1 AND l.expires_at > ?2
               AND o.password_hash IS NOT NULL AND o.removed = 0",
    )?
    .query_row(params![id, now], |r| {
        let role: String = r.get(5)?;
        Ok(LoginRow {
            id: r.get(0)?,
            token_hash: r.get(1)?,
            expires_at: r.get(2)?,
            user: UserRow {
                id: r.get(3)?,
                name: r.get(4)?,
                role: Role::parse(&role).unwrap_or(Role::User),
                password_hash: r.get(6)?,
                created_at: r.get(7)?,
            },
        })
    })
    .optional()?)
}

/// Ends login `id`.
pub fn close_login(c: &Connection, id: &str) -> Result<bool, MetaError> {
    Ok(c.execute("DELETE FROM logins WHERE id = ?1", [id])? > 0)
}

/// Logical bytes of every retained version of `owner`'s files.
pub fn used_bytes(c: &Connection, owner: OwnerId) -> Result<u64, MetaError> {
    let used: i64 = c
        .prepare_cached(
            "SELECT COALESCE(SUM(v.size), 0) FROM files f JOIN versions v ON v.file_id = f.id
             WHERE f.owner_id = ?1",
        )?
        .query_row([owner], |r| r.get(0))?;
    Ok(used.max(0) as u64)
}

/// Bytes `owner`'s open uploads hold reserved against their quota: the
/// declared size of each open session, the chunks stored so far of each
/// streamed upload; all but `except`.
pub fn reserved_bytes(
    c: &Connection,
    owner: OwnerId,
    except: Option<&str>,
    now: &str,
) -> Result<u64, MetaError> {
    let reserved: i64 = c
        .prepare_cached(
            "SELECT COALESCE(SUM(sc.size), 0) FROM upload_sessions s
             JOIN session_chunks sc ON sc.session_id = s.id
             WHERE s.owner_id = ?1 AND s.expires_at > ?2 AND s.committed_version IS NULL
               AND s.id <> ?3",
        )?
        .query_row(params![owner, now, except.unwrap_or("")], |r| r.get(0))?;
    Ok(reserved.max(0) as u64)
}

/// See [`crate::meta::MetaStore::usage`].
pub fn usage(c: &Connection, owner: OwnerId, now: &str) -> Result<Usage, MetaError> {
    let quota: Option<i64> = c
        .prepare_cached("SELECT quota_bytes FROM owners WHERE id = ?1")?
        .query_row([owner], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(Usage {
        used: used_bytes(c, owner)?,
        reserved: reserved_bytes(c, owner, None, now)?,
        quota: quota.map(|q| q.max(0) as u64),
    })
}

/// See [`crate::meta::MetaStore::set_quota`].
pub fn set_quota(tx: &Transaction, name: &str, quota: Option<u64>) -> Result<bool, MetaError> {
    Ok(tx.execute(
        "UPDATE owners SET quota_bytes = ?2
         WHERE name = ?1 AND password_hash IS NOT NULL AND removed = 0",
        params![name, quota.map(|q| q.min(i64::MAX as u64) as i64)],
    )? > 0)
}
