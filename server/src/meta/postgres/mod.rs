//! The PostgreSQL engine: one database that several stateless servers
//! share.
//!
//! tokio-postgres with a deadpool pool. An operation runs on tokio's
//! blocking pool and drives its statements with the runtime's handle, so
//! the policy above is plain sequential code. Writers run at READ
//! COMMITTED and lock owner rows (`FOR UPDATE`); gc's claim runs at
//! REPEATABLE READ (see [`crate::meta::sql::chunks`]); serialization
//! failures, deadlocks and unique-key races become
//! [`MetaError::Busy`], which the layer above retries. Time is the
//! database's `now()`.

pub mod schema;

use super::sql::tx::{Params, Row, Value};
use super::sql::{Engine, Mode, Tx, Work};
use super::{MetaError, MetaStore};
use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::error::Error;
use std::path::Path;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{NoTls, Statement};

/// Connections per server.
const POOL_SIZE: usize = 16;

/// Whether `url` names a PostgreSQL database.
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Words of errors without a SQLSTATE that mean the connection is gone
/// ("error communicating with the server" when it crashed under a query).
const LOST: [&str; 3] = ["connect", "communicat", "timed out"];

/// A PostgreSQL error as a [`MetaError`] kind.
pub(crate) fn pg(e: tokio_postgres::Error) -> MetaError {
    let msg = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    };
    let is = |codes: &[SqlState]| e.code().is_some_and(|c| codes.contains(c));
    if is(&[
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::UNIQUE_VIOLATION,
        SqlState::LOCK_NOT_AVAILABLE,
    ]) {
        MetaError::Busy(msg)
    } else if is(&[
        SqlState::DISK_FULL,
        SqlState::INSUFFICIENT_RESOURCES,
        SqlState::OUT_OF_MEMORY,
    ]) {
        MetaError::Full(msg)
    } else if is(&[
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::CONNECTION_FAILURE,
        SqlState::TOO_MANY_CONNECTIONS,
    ]) || (e.code().is_none() && (e.is_closed() || LOST.iter().any(|w| msg.contains(w))))
    {
        MetaError::Unreachable(msg)
    } else {
        MetaError::Backend(msg)
    }
}

impl From<tokio_postgres::Error> for MetaError {
    fn from(e: tokio_postgres::Error) -> Self {
        pg(e)
    }
}

/// The PostgreSQL engine; see the module's documentation.
pub struct PgEngine {
    pool: Pool,
}

/// Connects to `url` and migrates the schema.
pub async fn connect(url: &str) -> Result<MetaStore, MetaError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| MetaError::Backend(format!("bad database URL {}: {e}", super::redact(url))))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| MetaError::Backend(e.to_string()))?;
    let mut client = client(&pool).await?;
    schema::migrate(&mut client).await?;
    Ok(MetaStore::new(std::sync::Arc::new(PgEngine { pool })))
}

async fn client(pool: &Pool) -> Result<Object, MetaError> {
    pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        other => MetaError::Unreachable(other.to_string()),
    })
}

/// How an operation of `mode` begins, if it runs in a transaction.
fn begin(mode: Mode) -> Option<&'static str> {
    match mode {
        Mode::Read | Mode::Lookup => None,
        Mode::Report => Some("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        Mode::Write => Some("BEGIN ISOLATION LEVEL READ COMMITTED"),
        Mode::Unsynced => {
            Some("BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = off")
        }
        Mode::Claim => Some("BEGIN ISOLATION LEVEL REPEATABLE READ"),
    }
}

#[async_trait]
impl Engine for PgEngine {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn run(&self, mode: Mode, f: Work) -> Result<Box<dyn std::any::Any + Send>, MetaError> {
        let pool = self.pool.clone();
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || {
            let client = handle.block_on(client(&pool))?;
            let mut tx = PgTx {
                client,
                handle,
                open: false,
            };
            if let Some(sql) = begin(mode) {
                tx.batch(sql)?;
                tx.open = true;
            }
            let out = f(&tx);
            if tx.open {
                tx.open = false;
                match &out {
                    Ok(_) => tx.batch("COMMIT")?,
                    Err(_) => tx.batch("ROLLBACK")?,
                }
            }
            out
        })
        .await
        .map_err(|e| MetaError::Backend(e.to_string()))?
    }

    async fn snapshot_into(&self, _dest: &Path) -> Result<(), MetaError> {
        Err(MetaError::Unsupported(
            "Coffer takes no snapshots of PostgreSQL: back it up with its own tools \
             (continuous WAL archiving with pgBackRest or barman, or pg_basebackup and pg_dump)"
                .into(),
        ))
    }
}

/// A statement in PostgreSQL's spelling: the clock is `now()`, and JSON
/// arrays are read with `jsonb_array_elements`.
fn dialect(sql: &str) -> String {
    let mut out = sql.replace(
        "now_ms()",
        "CAST(FLOOR(EXTRACT(EPOCH FROM now()) * 1000) AS BIGINT)",
    );
    for (name, function) in [
        ("list_of(", "jsonb_array_elements_text"),
        ("rows_of(", "jsonb_array_elements"),
    ] {
        // `list_of($n)` becomes `function(CAST($n AS TEXT)::jsonb)`.
        while let Some(at) = out.find(name) {
            let arg_start = at + name.len();
            let Some(len) = out[arg_start..].find(')') else {
                break;
            };
            let arg = out[arg_start..arg_start + len].to_string();
            out.replace_range(
                at..arg_start + len + 1,
                &format!("{function}(CAST({arg} AS TEXT)::jsonb)"),
            );
        }
    }
    out
}

/// One pooled connection, in a transaction or not, as a [`Tx`]. A
/// transaction left open (a panic in the operation) is rolled back before
/// the connection goes back to the pool.
struct PgTx {
    client: Object,
    handle: Handle,
    open: bool,
}

impl PgTx {
    fn batch(&self, sql: &str) -> Result<(), MetaError> {
        Ok(self.handle.block_on(self.client.batch_execute(sql))?)
    }

    /// `sql` in PostgreSQL's spelling, prepared once per connection.
    fn prepare(&self, sql: &str) -> Result<Statement, MetaError> {
        Ok(self
            .handle
            .block_on(self.client.prepare_cached(&dialect(sql)))?)
    }
}

/// `params` as the values the statement binds.
fn values(params: Params) -> Vec<Value> {
    params.iter().map(|p| p.to_value()).collect()
}

fn refs(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if self.open {
            let _ = self.batch("ROLLBACK");
        }
    }
}

impl Tx for PgTx {
    fn query(&self, sql: &str, params: Params) -> Result<Vec<Row>, MetaError> {
        let (stmt, values) = (self.prepare(sql)?, values(params));
        let rows = self
            .handle
            .block_on(self.client.query(&stmt, &refs(&values)))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Value>(i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(MetaError::from)
    }

    fn execute(&self, sql: &str, params: Params) -> Result<u64, MetaError> {
        let (stmt, values) = (self.prepare(sql)?, values(params));
        Ok(self
            .handle
            .block_on(self.client.execute(&stmt, &refs(&values)))?)
    }

    fn lock_table(&self, table: &str) -> Result<(), MetaError> {
        self.batch(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
    }
}

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => Err(format!("an integer given for a {ty} parameter").into()),
            },
            Value::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => s.parse::<i32>()?.to_sql(ty, out),
                _ => s.as_str().to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)? as i64),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)? as i64),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Value::Text(String::from_sql(ty, raw)?)
            }
            _ => {
                return Err(
                    format!("a {ty} column: cast it to BIGINT or TEXT in the statement").into(),
                )
            }
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_spelled_for_postgres() {
        assert_eq!(
            dialect("SELECT value FROM list_of($2) WHERE x < now_ms() FOR UPDATE"),
            "SELECT value FROM jsonb_array_elements_text(CAST($2 AS TEXT)::jsonb) \
             WHERE x < CAST(FLOOR(EXTRACT(EPOCH FROM now()) * 1000) AS BIGINT) FOR UPDATE"
        );
        assert_eq!(
            dialect("FROM rows_of($1) AS t"),
            "FROM jsonb_array_elements(CAST($1 AS TEXT)::jsonb) AS t"
        );
    }
}
