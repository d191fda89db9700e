//! Titles' rights and the IP-to-country table, as stored (rights as
//! JSON; see `crate::rights` for what they mean).

use super::db::Conn;
use super::StoreError;
use crate::rights::Rights;

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS title_rights (title TEXT PRIMARY KEY, rights TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS countries (prefix TEXT PRIMARY KEY, country TEXT NOT NULL)",
];

/// Sets (or, with None, clears) `title`'s rights.
pub fn set(c: &mut dyn Conn, title: &str, rights: Option<&Rights>) -> Result<(), StoreError> {
    match rights {
        Some(r) => {
            c.execute(
                "INSERT INTO title_rights (title, rights) VALUES ($1, $2) \
                 ON CONFLICT (title) DO UPDATE SET rights = excluded.rights",
                &[title.into(), super::sql::json(r)],
            )?;
        }
        None => {
            c.execute("DELETE FROM title_rights WHERE title = $1", &[title.into()])?;
        }
    }
    Ok(())
}

/// Every title's rights.
pub fn all(c: &mut dyn Conn) -> Result<Vec<(String, Rights)>, StoreError> {
    c.query("SELECT title, rights FROM title_rights ORDER BY title", &[])?
        .iter()
        .map(|r| {
            let rights =
                serde_json::from_str(&r[1].text()?).map_err(|e| StoreError::Corrupt(format!("title rights: {e}")))?;
            Ok((r[0].text()?, rights))
        })
        .collect()
}

/// Replaces the country table with `rows` (prefix text, code).
pub fn import(c: &mut dyn Conn, rows: &[(String, String)]) -> Result<usize, StoreError> {
    c.execute("DELETE FROM countries", &[])?;
    for (p, code) in rows {
        c.execute(
            "INSERT INTO countries (prefix, country) VALUES ($1, $2) \
             ON CONFLICT (prefix) DO UPDATE SET country = excluded.country",
            &[p.into(), code.into()],
        )?;
    }
    Ok(rows.len())
}

/// The country table.
pub fn countries(c: &mut dyn Conn) -> Result<Vec<(String, String)>, StoreError> {
    c.query("SELECT prefix, country FROM countries", &[])?
        .iter()
        .map(|r| Ok((r[0].text()?, r[1].text()?)))
        .collect()
}
