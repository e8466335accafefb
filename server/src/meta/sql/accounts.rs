//! Accounts and logins: users, their password hashes and roles, their
//! live logins, and their quotas.

use super::ms;
use super::tx::{Row, Tx};
use crate::meta::{
    AppPasswordRow, Conflict, LoginRow, MetaError, OwnerId, Role, UserRow, DEFAULT_OWNER,
};
use std::time::Duration;

const SELECT_USER: &str = "SELECT id, name, role, password_hash, created_at FROM owners";

/// A user from columns `i..i + 5` (id, name, role, hash, created).
fn user_at(r: &Row, i: usize) -> UserRow {
    let role: String = r.get(i + 2);
    UserRow {
        id: r.get(i),
        name: r.get(i + 1),
        role: Role::parse(&role).unwrap_or(Role::User),
        password_hash: r.get(i + 3),
        created_at: r.time_opt(i + 4).unwrap_or_default(),
    }
}

/// See [`crate::meta::MetaStore::user`].
pub fn by_name(tx: &dyn Tx, name: &str) -> Result<Option<UserRow>, MetaError> {
    Ok(tx
        .query_opt(
            &format!("{SELECT_USER} WHERE name = $1 AND password_hash IS NOT NULL AND removed = 0"),
            &[&name],
        )?
        .map(|r| user_at(&r, 0)))
}

/// See [`crate::meta::MetaStore::users`].
pub fn list(tx: &dyn Tx) -> Result<Vec<UserRow>, MetaError> {
    Ok(tx
        .query(
            &format!("{SELECT_USER} WHERE password_hash IS NOT NULL AND removed = 0 ORDER BY name"),
            &[],
        )?
        .iter()
        .map(|r| user_at(r, 0))
        .collect())
}

/// See [`crate::meta::MetaStore::add_user`].
pub fn add(tx: &dyn Tx, name: &str, password_hash: &str, role: Role) -> Result<UserRow, MetaError> {
    // One account change at a time: the first user is decided once.
    tx.lock_table("owners")?;
    if by_name(tx, name)?.is_some() {
        return Err(MetaError::Conflict(Conflict::User(name.to_string())));
    }
    let first = tx
        .query_opt(
            "SELECT 1 FROM owners WHERE password_hash IS NOT NULL OR removed <> 0 LIMIT 1",
            &[],
        )?
        .is_none();
    let adopted = first
        && tx.execute(
            "UPDATE owners SET name = $2, password_hash = $3, role = $4, created_at = now_ms()
             WHERE id = $1",
            &[&DEFAULT_OWNER, &name, &password_hash, &role.as_str()],
        )? > 0;
    if !adopted {
        tx.execute(
            "INSERT INTO owners (name, password_hash, role, created_at)
             VALUES ($1, $2, $3, now_ms())",
            &[&name, &password_hash, &role.as_str()],
        )?;
    }
    by_name(tx, name)?.ok_or_else(|| MetaError::Backend("the new user vanished".into()))
}

/// See [`crate::meta::MetaStore::set_password`].
pub fn set_password(tx: &dyn Tx, name: &str, password_hash: &str) -> Result<bool, MetaError> {
    let Some(user) = by_name(tx, name)? else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE owners SET password_hash = $2 WHERE id = $1",
        &[&user.id, &password_hash],
    )?;
    tx.execute("DELETE FROM logins WHERE owner_id = $1", &[&user.id])?;
    Ok(true)
}

/// See [`crate::meta::MetaStore::remove_user`].
pub fn remove(tx: &dyn Tx, name: &str) -> Result<bool, MetaError> {
    let Some(user) = by_name(tx, name)? else {
        return Ok(false);
    };
    tx.execute("DELETE FROM logins WHERE owner_id = $1", &[&user.id])?;
    tx.execute("DELETE FROM app_passwords WHERE owner_id = $1", &[&user.id])?;
    tx.execute(
        "UPDATE files SET deleted_at = now_ms() WHERE owner_id = $1 AND deleted_at IS NULL",
        &[&user.id],
    )?;
    tx.execute(
        "UPDATE owners SET removed = 1, password_hash = NULL,
                name = '#' || CAST(id AS TEXT) || ' ' || name
         WHERE id = $1",
        &[&user.id],
    )?;
    Ok(true)
}

/// See [`crate::meta::MetaStore::open_login`].
pub fn open_login(
    tx: &dyn Tx,
    user: OwnerId,
    token_hash: &str,
    ttl: Duration,
) -> Result<(String, String), MetaError> {
    let id = crate::meta::random_id();
    let expires = tx
        .query_one(
            "INSERT INTO logins (id, owner_id, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, now_ms(), now_ms() + $4)
             RETURNING expires_at",
            &[&id, &user, &token_hash, &ms(ttl)],
        )?
        .time(0);
    tx.execute("DELETE FROM logins WHERE expires_at <= now_ms()", &[])?;
    Ok((id, expires))
}

/// See [`crate::meta::MetaStore::login`].
pub fn login(tx: &dyn Tx, id: &str) -> Result<Option<LoginRow>, MetaError> {
    Ok(tx
        .query_opt(
            "SELECT l.id, l.token_hash, l.expires_at,
                    o.id, o.name, o.role, o.password_hash, o.created_at
             FROM logins l JOIN owners o ON o.id = l.owner_id
             WHERE l.id = $1 AND l.expires_at > now_ms()
               AND o.password_hash IS NOT NULL AND o.removed = 0",
            &[&id],
        )?
        .map(|r| LoginRow {
            id: r.get(0),
            token_hash: r.get(1),
            expires_at: r.time(2),
            user: user_at(&r, 3),
        }))
}

/// See [`crate::meta::MetaStore::close_login`].
pub fn close_login(tx: &dyn Tx, id: &str) -> Result<bool, MetaError> {
    Ok(tx.execute("DELETE FROM logins WHERE id = $1", &[&id])? > 0)
}

/// See [`crate::meta::MetaStore::set_quota`].
pub fn set_quota(tx: &dyn Tx, name: &str, quota: Option<u64>) -> Result<bool, MetaError> {
    Ok(tx.execute(
        "UPDATE owners SET quota_bytes = $2
         WHERE name = $1 AND password_hash IS NOT NULL AND removed = 0",
        &[&name, &quota],
    )? > 0)
}

const SELECT_APP_PASSWORD: &str = "SELECT a.id, a.name, a.secret_hash, a.created_at";

fn app_password_row(r: &Row) -> AppPasswordRow {
    AppPasswordRow {
        id: r.get(0),
        name: r.get(1),
        secret_hash: r.get(2),
        created_at: r.time(3),
    }
}

/// See [`crate::meta::MetaStore::add_app_password`].
pub fn add_app_password(
    tx: &dyn Tx,
    owner: OwnerId,
    id: &str,
    name: &str,
    secret_hash: &str,
) -> Result<AppPasswordRow, MetaError> {
    let taken = tx
        .query_opt(
            "SELECT 1 FROM app_passwords WHERE owner_id = $1 AND name = $2",
            &[&owner, &name],
        )?
        .is_some();
    if taken {
        return Err(MetaError::Conflict(Conflict::AppPassword(name.to_string())));
    }
    tx.execute(
        "INSERT INTO app_passwords (id, owner_id, name, secret_hash, created_at)
         VALUES ($1, $2, $3, $4, now_ms())",
        &[&id, &owner, &name, &secret_hash],
    )?;
    app_password(tx, id)?
        .map(|(a, _)| a)
        .ok_or_else(|| MetaError::Backend("the new app password vanished".into()))
}

/// See [`crate::meta::MetaStore::app_passwords`].
pub fn app_passwords(tx: &dyn Tx, owner: OwnerId) -> Result<Vec<AppPasswordRow>, MetaError> {
    Ok(tx
        .query(
            &format!(
                "{SELECT_APP_PASSWORD} FROM app_passwords a WHERE a.owner_id = $1 ORDER BY a.name"
            ),
            &[&owner],
        )?
        .iter()
        .map(app_password_row)
        .collect())
}

/// See [`crate::meta::MetaStore::revoke_app_password`].
pub fn revoke_app_password(tx: &dyn Tx, owner: OwnerId, name: &str) -> Result<bool, MetaError> {
    Ok(tx.execute(
        "DELETE FROM app_passwords WHERE owner_id = $1 AND name = $2",
        &[&owner, &name],
    )? > 0)
}

/// See [`crate::meta::MetaStore::app_password`].
pub fn app_password(tx: &dyn Tx, id: &str) -> Result<Option<(AppPasswordRow, UserRow)>, MetaError> {
    Ok(tx
        .query_opt(
            &format!(
                "{SELECT_APP_PASSWORD}, o.id, o.name, o.role, o.password_hash, o.created_at
                 FROM app_passwords a JOIN owners o ON o.id = a.owner_id
                 WHERE a.id = $1 AND o.password_hash IS NOT NULL AND o.removed = 0"
            ),
            &[&id],
        )?
        .map(|r| (app_password_row(&r), user_at(&r, 4))))
}
