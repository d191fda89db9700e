//! The little a store needs from a SQL database, so the store's logic and
//! SQL are written once (`sql.rs`) and SQLite and PostgreSQL are adapters.
//! Statements use `$1, $2, …` placeholders.

use super::StoreError;

/// A value crossing the adapter: the store only uses integers and text.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Text(String),
    Null,
}

impl Value {
    pub fn int(&self) -> Result<i64, StoreError> {
        match self {
            Value::Int(i) => Ok(*i),
            other => Err(StoreError::Corrupt(format!("expected an integer, found {other:?}"))),
        }
    }

    pub fn text(&self) -> Result<String, StoreError> {
        match self {
            Value::Text(s) => Ok(s.clone()),
            other => Err(StoreError::Corrupt(format!("expected text, found {other:?}"))),
        }
    }

    /// A stored title or name, checked like one that came in.
    pub fn name(&self) -> Result<nearcast_common::Name, StoreError> {
        nearcast_common::Name::new(self.text()?).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub fn opt_text(&self) -> Result<Option<String>, StoreError> {
        match self {
            Value::Null => Ok(None),
            v => v.text().map(Some),
        }
    }

    pub fn opt_int(&self) -> Result<Option<i64>, StoreError> {
        match self {
            Value::Null => Ok(None),
            v => v.int().map(Some),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}

impl From<&nearcast_common::Name> for Value {
    fn from(n: &nearcast_common::Name) -> Self {
        Value::Text(n.to_string())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

/// Which database a connection speaks to, for the little SQL that is not
/// portable (the change log's ordering lock and notification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// One open transaction.
pub trait Conn {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs a query; its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, StoreError>;
}

pub trait Db: Send + Sync {
    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled
    /// back otherwise.
    fn transaction<T>(&self, f: impl FnOnce(&mut dyn Conn) -> Result<T, StoreError>) -> Result<T, StoreError>;

    /// See `Store::listener`.
    fn listener(&self) -> Result<Option<Box<dyn super::Listener>>, StoreError> {
        Ok(None)
    }
}
