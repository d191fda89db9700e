//! A small HTTP/1.1 client on hyper: one connection per request, which is
//! all the agent needs (a few control calls a minute and a handful of
//! long downloads). Plain `http://` only for now; the fill server's TLS
//! comes with the image issue.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Time to connect and get a response head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body `fetch_small` reads (manifests, status, metrics).
const MAX_SMALL_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("'{0}' is not an http:// URL with a host")]
    BadUrl(String),
    #[error("{url}: cannot connect: {source}")]
    Connect { url: String, source: std::io::Error },
    #[error("{url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("{url}: no answer within {HEAD_TIMEOUT:?}")]
    Timeout { url: String },
    #[error("{url}: {status}: {body}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
}

/// `http://host[:port]` and the path after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = || HttpError::BadUrl(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().map_err(|_| bad())?),
            _ => (authority, 80),
        };
        if host.is_empty() || path.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Url {
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// Sends one request and returns the response head with its streaming
/// body. `url` is absolute; `headers` are added as given.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<Response<Incoming>, HttpError> {
    let u = Url::parse(url)?;
    let proto = |reason: String| HttpError::Protocol {
        url: url.to_string(),
        reason,
    };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((u.host.as_str(), u.port))
            .await
            .map_err(|source| HttpError::Connect {
                url: url.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| proto(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
        let mut req = Request::builder()
            .method(method)
            .uri(&u.path)
            .header("host", format!("{}:{}", u.host, u.port))
            .header("user-agent", concat!("nearcast-agent/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| proto(e.to_string()))?;
        sender.send_request(req).await.map_err(|e| proto(e.to_string()))
    };
    tokio::time::timeout(HEAD_TIMEOUT, exchange)
        .await
        .map_err(|_| HttpError::Timeout { url: url.to_string() })?
}

/// Sends a request and reads the whole (bounded) body; a status other than
/// 2xx is an error carrying the body's text.
pub async fn fetch_small(method: &str, url: &str, headers: &[(&str, String)], body: Bytes) -> Result<Bytes, HttpError> {
    let resp = send(method, url, headers, body).await?;
    let status = resp.status();
    let bytes = Limited::new(resp.into_body(), MAX_SMALL_BODY)
        .collect()
        .await
        .map_err(|e| HttpError::Protocol {
            url: url.to_string(),
            reason: e.to_string(),
        })?
        .to_bytes();
    if !status.is_success() {
        return Err(HttpError::Status {
            url: url.to_string(),
            status,
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
                .trim()
                .to_string(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:7070/v1/x?y=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 7070, "/v1/x?y=1")
        );
        let u = Url::parse("http://fill.example").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("fill.example", 80, "/"));
        let u = Url::parse("http://[::1]:8080/c").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        for bad in ["https://x", "x:80", "http://", "http://h:port", "http://h/a b"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
