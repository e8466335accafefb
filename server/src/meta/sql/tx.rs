//! The seam between the metadata policy and a SQL engine: [`Tx`], a
//! transaction that runs statements, and the [`Value`]s they take and give.
//!
//! Statements are written once, in PostgreSQL's spelling (`$n`
//! placeholders, `CAST`, `ON CONFLICT`, `RETURNING`), plus three names each
//! adapter spells its own way:
//! - `now_ms()`: the engine's clock in milliseconds since the Unix epoch,
//!   fixed for the transaction;
//! - `list_of($n)`: the rows of a JSON array of scalars (see [`list`]),
//!   as a table with one column, `value`;
//! - `rows_of($n)`: the rows of a JSON array of arrays (see [`rows`]), as a
//!   table with one column `value`, read with `value ->> i`.
//!
//! A `FOR UPDATE` suffix locks rows where the engine has row locks and is
//! dropped where one writer runs at a time.

use crate::meta::MetaError;

/// A value bound to, or read from, a statement. Booleans are integers
/// (0, 1) and times are integer milliseconds since the Unix epoch on
/// every engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// What can be bound to a placeholder.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// Integers and booleans bind as [`Value::Int`] (a `u64` beyond
/// `i64::MAX` is clamped).
macro_rules! int_values {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_values!(i64, i32, u32, u64, usize, bool);

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// A list for `list_of($n)`: a JSON array of the items.
pub fn list<S: AsRef<str>>(items: &[S]) -> Value {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    Value::Text(serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()))
}

/// Rows for `rows_of($n)`: a JSON array of arrays.
pub fn rows(items: impl IntoIterator<Item = Vec<serde_json::Value>>) -> Value {
    let items: Vec<Vec<serde_json::Value>> = items.into_iter().collect();
    Value::Text(serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()))
}

/// What can be read from a column.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            Value::Text(s) => s.parse().ok(),
            Value::Null => None,
        }
    }
}

/// Unsigned integers read from [`Value::Int`], clamped to their range.
macro_rules! unsigned_values {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Option<Self> {
                i64::from_value(v).map(|i| <$t>::try_from(i.max(0)).unwrap_or(<$t>::MAX))
            }
        }
    )*};
}
unsigned_values!(u64, u32, usize);

impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Null => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as a `T`. Panics if the column is missing or of another
    /// type: the statement beside the call decides both.
    #[track_caller]
    pub fn get<T: FromValue>(&self, i: usize) -> T {
        let v = self.0.get(i).unwrap_or(&Value::Null);
        T::from_value(v)
            .unwrap_or_else(|| panic!("column {i} is {v:?}, not a {}", std::any::type_name::<T>()))
    }

    /// Column `i` as an RFC 3339 time (a time column holds milliseconds).
    #[track_caller]
    pub fn time(&self, i: usize) -> String {
        crate::meta::ms_rfc3339(self.get(i))
    }

    /// Column `i` as an RFC 3339 time, or `None` when it is NULL.
    #[track_caller]
    pub fn time_opt(&self, i: usize) -> Option<String> {
        self.get::<Option<i64>>(i).map(crate::meta::ms_rfc3339)
    }
}

/// Parameters of one statement.
pub type Params<'a> = &'a [&'a dyn ToValue];

/// One transaction (or, for reads, one connection) of an engine. Every
/// metadata operation is written once against this.
pub trait Tx {
    /// Runs `sql` and returns its rows.
    fn query(&self, sql: &str, params: Params) -> Result<Vec<Row>, MetaError>;

    /// Runs `sql` and returns how many rows it changed.
    fn execute(&self, sql: &str, params: Params) -> Result<u64, MetaError>;

    /// Holds `table` against every other writer until the transaction
    /// ends, where writers run side by side.
    fn lock_table(&self, table: &str) -> Result<(), MetaError>;

    /// The first row of `sql`, if any.
    fn query_opt(&self, sql: &str, params: Params) -> Result<Option<Row>, MetaError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The one row `sql` returns.
    fn query_one(&self, sql: &str, params: Params) -> Result<Row, MetaError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| MetaError::Backend(format!("no row from: {}", sql.trim())))
    }
}

/// How an operation uses the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads that must see this server's own latest writes; no
    /// transaction.
    Read,
    /// The short lookups every request makes (is its login live?), kept
    /// clear of long reports and busy writers where the engine can.
    Lookup,
    /// A long read of whole tables, every figure from one snapshot, that
    /// holds up no writer.
    Report,
    /// A transaction whose commit is durable when it returns.
    Write,
    /// A transaction whose commit is not waited for on disk: for rows that
    /// only matter once a later, durable commit names them (chunk holds and
    /// records, replica outcomes, leases, open uploads). Commits reach the
    /// disk in order, so that commit makes them durable too; a crash before
    /// it may forget them, never tear them.
    Unsynced,
    /// A transaction that must fail, rather than succeed, if a row it read
    /// was written since it began (gc's claim on unreferenced chunks).
    Claim,
}
