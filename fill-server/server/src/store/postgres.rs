//! PostgreSQL, for larger deployments and replicas: the same store and SQL
//! as SQLite (`sql.rs`), over the `postgres` client, a few connections per
//! process, plus the follower's own (`PgListener`). Given as `postgres://…` or a
//! `host=… user=…` string in the `database` setting.

use std::sync::Mutex;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};

use super::db::{Conn, Db, Dialect, Value};
use super::sql::SqlStore;
use super::StoreError;

/// Connections a replica holds: the heartbeat batch's transaction does not
/// hold up the reads (a fleet rebuild, a manifest's demand, an admin call).
const CONNECTIONS: usize = 4;

pub struct PgDb {
    clients: Vec<Mutex<Client>>,
    next: std::sync::atomic::AtomicUsize,
    /// For the listener's connection of its own.
    url: String,
}

pub type PgStore = SqlStore<PgDb>;

impl SqlStore<PgDb> {
    /// Connects (plain TCP: run it on loopback or a private network) and
    /// creates the tables if needed.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let clients = (0..CONNECTIONS)
            .map(|_| Client::connect(url, NoTls).map(Mutex::new).map_err(db_err))
            .collect::<Result<_, _>>()?;
        SqlStore::new(PgDb {
            clients,
            next: Default::default(),
            url: url.to_string(),
        })
    }
}

/// Waits on `LISTEN` and holds advisory locks, on a connection of its own.
pub struct PgListener {
    client: Client,
    /// Mixed into lock keys: the schema's hash, so servers on different
    /// schemas of one database (the tests) do not share a lock.
    salt: i64,
    held: std::collections::BTreeSet<i64>,
}

impl PgListener {
    fn connect(url: &str) -> Result<PgListener, StoreError> {
        let mut client = Client::connect(url, NoTls).map_err(db_err)?;
        client
            .batch_execute(&format!("LISTEN {}", super::changes::CHANNEL))
            .map_err(db_err)?;
        let row = client.query_one("SELECT current_schema()", &[]).map_err(db_err)?;
        let schema: Option<String> = row.try_get(0).map_err(db_err)?;
        let d = ring::digest::digest(&ring::digest::SHA256, schema.unwrap_or_default().as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.as_ref()[..8]);
        let salt = i64::from_le_bytes(b);
        Ok(PgListener {
            client,
            salt,
            held: Default::default(),
        })
    }
}

impl super::Listener for PgListener {
    fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        let mut n = self.client.notifications();
        let first = n.timeout_iter(timeout).next().map_err(db_err)?;
        let mut rest = n.iter();
        while rest.next().map_err(db_err)?.is_some() {}
        Ok(first.is_some())
    }

    fn try_lock(&mut self, key: i64) -> Result<bool, StoreError> {
        let key = key ^ self.salt;
        if self.held.contains(&key) {
            // Session locks stack: ask only once, but check the link.
            self.client.simple_query("SELECT 1").map_err(db_err)?;
            return Ok(true);
        }
        let row = self
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(db_err)?;
        let got: bool = row.try_get(0).map_err(db_err)?;
        if got {
            self.held.insert(key);
        }
        Ok(got)
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
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

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
    fn listener(&self) -> Result<Option<Box<dyn super::Listener>>, StoreError> {
        Ok(Some(Box::new(PgListener::connect(&self.url)?)))
    }

    fn transaction<T>(&self, f: impl FnOnce(&mut dyn Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        // A free connection, else wait for the next in turn.
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.clients.len();
        let free = (0..n).find_map(|i| self.clients[(start + i) % n].try_lock().ok());
        let mut client = match free {
            Some(c) => c,
            None => self.clients[start % n].lock().unwrap_or_else(|p| p.into_inner()),
        };
        let mut tx = client.transaction().map_err(db_err)?;
        let out = f(&mut Tx(&mut tx))?;
        tx.commit().map_err(db_err)?;
        Ok(out)
    }
}
