//! SQLite, the default: one file, WAL mode, one connection behind a mutex
//! (control-plane writes are a few per appliance per minute).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::Value as Lite;
use rusqlite::Connection;

use super::db::{Conn, Db, Dialect, Value};
use super::sql::SqlStore;
use super::StoreError;

pub struct SqliteDb {
    conn: Mutex<Connection>,
}

pub type SqliteStore = SqlStore<SqliteDb>;

impl SqlStore<SqliteDb> {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db_err)?;
        SqlStore::new(SqliteDb { conn: Mutex::new(conn) })
    }
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Db(Box::new(e))
}

/// `$1` → `?1`: SQLite's numbered placeholders.
fn lite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

fn to_lite(params: &[Value]) -> Vec<Lite> {
    params
        .iter()
        .map(|v| match v {
            Value::Int(i) => Lite::Integer(*i),
            Value::Text(s) => Lite::Text(s.clone()),
            Value::Null => Lite::Null,
        })
        .collect()
}

struct Tx<'a>(&'a rusqlite::Transaction<'a>);

impl Conn for Tx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let mut stmt = self.0.prepare_cached(&lite_sql(sql)).map_err(db_err)?;
        let n = stmt
            .execute(rusqlite::params_from_iter(to_lite(params)))
            .map_err(db_err)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, StoreError> {
        let mut stmt = self.0.prepare_cached(&lite_sql(sql)).map_err(db_err)?;
        let cols = stmt.column_count();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(to_lite(params)), |r| {
                (0..cols)
                    .map(|i| {
                        Ok(match r.get::<_, Lite>(i)? {
                            Lite::Integer(n) => Value::Int(n),
                            Lite::Text(s) => Value::Text(s),
                            Lite::Null => Value::Null,
                            Lite::Real(f) => Value::Text(f.to_string()),
                            Lite::Blob(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }
}

impl Db for SqliteDb {
    fn transaction<T>(&self, f: impl FnOnce(&mut dyn Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction().map_err(db_err)?;
        let out = f(&mut Tx(&tx))?;
        tx.commit().map_err(db_err)?;
        Ok(out)
    }
}
