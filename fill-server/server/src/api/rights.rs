//! Rights on the API: the operator sets a title's windows and territories
//! (`PUT|DELETE /v1/admin/titles/{title}/rights`, `GET /v1/admin/rights`)
//! and imports the IP-to-country table (`PUT /v1/admin/countries`,
//! `network,country` lines); players are refused with 451 and the reason
//! (`unavailable`). Meaning in `crate::rights`.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::body::Bytes;
use hyper::StatusCode;

use super::{error, parse, read, reply, write, Resp};
use crate::app::{App, Changed};
use crate::rights::{Rights, Unavailable};
use crate::store::StoreError;

/// 451 with the JSON reason when `title` may not be watched from
/// `client` now; None when it may.
pub fn refused(app: &App, title: &str, client: IpAddr) -> Option<Resp> {
    let why = app.rights().viewer(title, client, nearcast_common::unix_now()).err()?;
    Some(unavailable(title, &why))
}

pub fn unavailable(title: &str, why: &Unavailable) -> Resp {
    reply(
        StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
        serde_json::json!({ "error": format!("'{title}' is {why}"), "reason": why }),
    )
}

/// `PUT /v1/admin/titles/{title}/rights` (a body) or `DELETE` (none).
pub async fn set(app: Arc<App>, title: &str, body: Option<Bytes>) -> Resp {
    let title = match nearcast_common::Name::new(title) {
        Ok(t) => t.to_string(),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let rights = match body.map(|b| parse::<Rights>(&b)).transpose() {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Some(Err(e)) = rights.as_ref().map(Rights::check) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    write(app, Changed::Rights, move |a| {
        a.store.set_rights(&title, rights.as_ref())?;
        Ok::<_, StoreError>(serde_json::json!({ "title": title, "rights": rights }))
    })
    .await
}

/// `GET /v1/admin/rights`: every title's rights.
pub async fn list(app: Arc<App>) -> Resp {
    read(app, |a| {
        let all = a.store.rights()?;
        Ok::<_, StoreError>(all.into_iter().collect::<std::collections::BTreeMap<_, _>>())
    })
    .await
}

/// `PUT /v1/admin/countries`: the table replaced whole.
pub async fn import_countries(app: Arc<App>, body: &[u8]) -> Resp {
    let Ok(text) = std::str::from_utf8(body) else {
        return error(StatusCode::BAD_REQUEST, "the country table is not UTF-8");
    };
    let rows = match crate::rights::parse_countries(text) {
        Ok(rows) => rows,
        Err((line, reason)) => return error(StatusCode::BAD_REQUEST, format!("line {line}: {reason}")),
    };
    let rows: Vec<(String, String)> = rows
        .into_iter()
        .map(|(p, c)| (p.to_string(), String::from_utf8_lossy(&c).into_owned()))
        .collect();
    write(app, Changed::Rights, move |a| {
        let n = a.store.import_countries(&rows)?;
        Ok::<_, StoreError>(serde_json::json!({ "countries": n }))
    })
    .await
}
