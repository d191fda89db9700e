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
    #[error("'{url}' is not an http:// URL with a host")]
    BadUrl {
        url: String,
        source: Option<hyper::http::uri::InvalidUri>,
    },
    #[error("{url}: cannot connect: {source}")]
    Connect { url: String, source: std::io::Error },
    #[error("{url}: {source}")]
    Protocol {
        url: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{url}: no answer within {HEAD_TIMEOUT:?}")]
    Timeout { url: String },
    #[error("{url}: {status}: {body}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
}

/// Where a request goes: what to connect to, the `Host` header (the URL's
/// authority as written: an IPv6 address keeps its brackets), and the
/// path with the query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub host_header: String,
    pub path: String,
}

impl Target {
    /// An absolute `http://` URL, parsed by hyper.
    pub fn parse(url: &str) -> Result<Target, HttpError> {
        let bad = |source: Option<hyper::http::uri::InvalidUri>| HttpError::BadUrl {
            url: url.to_string(),
            source,
        };
        let uri: hyper::Uri = url.parse().map_err(|e| bad(Some(e)))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad(None));
        }
        let authority = uri.authority().ok_or_else(|| bad(None))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        // hyper takes `h:port` with no number as "no port": refuse it.
        let port_given = authority.as_str().len() > authority.host().len();
        if host.is_empty() || (port_given && authority.port_u16().is_none()) {
            return Err(bad(None));
        }
        Ok(Target {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(80),
            host_header: authority.as_str().to_string(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
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
    let u = Target::parse(url)?;
    let proto = |e: Box<dyn std::error::Error + Send + Sync>| HttpError::Protocol {
        url: url.to_string(),
        source: e,
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
            .map_err(|e| proto(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
        let mut req = Request::builder()
            .method(method)
            .uri(&u.path)
            .header("host", &u.host_header)
            .header("user-agent", concat!("nearcast-agent/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| proto(e.into()))?;
        sender.send_request(req).await.map_err(|e| proto(e.into()))
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
        .map_err(|source| HttpError::Protocol {
            url: url.to_string(),
            source,
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
    fn targets() {
        let t = Target::parse("http://127.0.0.1:7070/v1/x?y=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.host_header.as_str(), t.path.as_str()),
            ("127.0.0.1", 7070, "127.0.0.1:7070", "/v1/x?y=1")
        );
        let t = Target::parse("http://fill.example").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.host_header.as_str(), t.path.as_str()),
            ("fill.example", 80, "fill.example", "/")
        );
        // The Host header keeps the brackets of an IPv6 address.
        let t = Target::parse("http://[::1]:8080/c").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.host_header.as_str()),
            ("::1", 8080, "[::1]:8080")
        );
        for bad in [
            "https://x",
            "x:80",
            "http://",
            "http://h:port",
            "http://h/a b",
            "/just/a/path",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
