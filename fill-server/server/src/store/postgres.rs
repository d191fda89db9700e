//! PostgreSQL, for larger deployments: the same store and SQL as SQLite
//! (`sql.rs`), over the `postgres` client. Given as `postgres://…` or a
//! `host=… user=…` string in the `database` setting.

use std::sync::Mutex;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};

use super::db::{Conn, Db, Value};
use super::sql::SqlStore;
use super::StoreError;

pub struct PgDb {
    client: Mutex<Client>,
}

pub type PgStore = SqlStore<PgDb>;

impl SqlStore<PgDb> {
    /// Connects (plain TCP: run it on loopback or a private network) and
    /// creates the tables if needed.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let client = Client::connect(url, NoTls).map_err(db_err)?;
        SqlStore::new(PgDb {
            client: Mutex::new(client),
        })
    }
}

fn db_err(e: postgres::Error) -> StoreError {
    StoreError::Db(Box::new(e))
}

fn boxed(params: &[Value]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                Value::Int(i) => Box::new(*i),
                Value::Text(s) => Box::new(s.clone()),
                Value::Null => Box::new(Option::<String>::None),
            }
        })
        .collect()
}

struct Tx<'a, 'b>(&'a mut postgres::Transaction<'b>);

impl Conn for Tx<'_, '_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let owned = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        self.0.execute(sql, &refs).map_err(db_err)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, StoreError> {
        let owned = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        let rows = self.0.query(sql, &refs).map_err(db_err)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        let v = match *row.columns()[i].type_() {
                            Type::INT8 => row.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::Int)),
                            Type::INT4 => row
                                .try_get::<_, Option<i32>>(i)
                                .map(|v| v.map(|n| Value::Int(n.into()))),
                            _ => row.try_get::<_, Option<String>>(i).map(|v| v.map(Value::Text)),
                        };
                        v.map(|o| o.unwrap_or(Value::Null)).map_err(db_err)
                    })
                    .collect()
            })
            .collect()
    }
}

impl Db for PgDb {
    fn transaction<T>(&self, f: impl FnOnce(&mut dyn Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let mut tx = client.transaction().map_err(db_err)?;
        let out = f(&mut Tx(&mut tx))?;
        tx.commit().map_err(db_err)?;
        Ok(out)
    }
}
