//! A small HTTP/1.1 client on hyper: one connection per request, which is
//! all the agent needs (a few control calls a minute and a handful of
//! long downloads). `https://` needs a client configuration that pins the
//! server's CA (`pinned_client`): the agent trusts that CA and nothing
//! else, not the system's roots.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::ClientConfig;

/// Time to connect and get a response head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body `fetch_small` reads (manifests, status, metrics).
const MAX_SMALL_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("'{url}' is not an http:// or https:// URL with a host")]
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
    #[error("{url}: TLS: {reason}")]
    Tls { url: String, reason: String },
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
    /// `https://`.
    pub tls: bool,
}

impl Target {
    /// An absolute `http://` or `https://` URL, parsed by hyper.
    pub fn parse(url: &str) -> Result<Target, HttpError> {
        let bad = |source: Option<hyper::http::uri::InvalidUri>| HttpError::BadUrl {
            url: url.to_string(),
            source,
        };
        let uri: hyper::Uri = url.parse().map_err(|e| bad(Some(e)))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad(None)),
        };
        let authority = uri.authority().ok_or_else(|| bad(None))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        // hyper takes `h:port` with no number as "no port": refuse it.
        let port_given = authority.as_str().len() > authority.host().len();
        if host.is_empty() || (port_given && authority.port_u16().is_none()) {
            return Err(bad(None));
        }
        Ok(Target {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            host_header: authority.as_str().to_string(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
            tls,
        })
    }
}

/// Sends one request and returns the response head with its streaming
/// body. `url` is absolute (`http://` only); `headers` are added as given.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<Response<Incoming>, HttpError> {
    send_with(method, url, headers, body, None).await
}

/// `send`, over TLS with `tls` for an `https://` URL.
pub async fn send_with(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Response<Incoming>, HttpError> {
    let u = Target::parse(url)?;
    let proto = |e: Box<dyn std::error::Error + Send + Sync>| HttpError::Protocol {
        url: url.to_string(),
        source: e,
    };
    let tls_err = |reason: String| HttpError::Tls {
        url: url.to_string(),
        reason,
    };
    let mut req = Request::builder()
        .method(method)
        .uri(&u.path)
        .header("host", &u.host_header)
        .header("user-agent", concat!("nearcast-agent/", env!("CARGO_PKG_VERSION")));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(body)).map_err(|e| proto(e.into()))?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((u.host.as_str(), u.port))
            .await
            .map_err(|source| HttpError::Connect {
                url: url.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        if !u.tls {
            return round_trip(TokioIo::new(stream), req).await.map_err(proto);
        }
        let config = tls.ok_or_else(|| tls_err("no pinned CA for this server".into()))?;
        let name = ServerName::try_from(u.host.clone()).map_err(|e| tls_err(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, stream)
            .await
            .map_err(|e| tls_err(e.to_string()))?;
        round_trip(TokioIo::new(stream), req).await.map_err(proto)
    };
    tokio::time::timeout(HEAD_TIMEOUT, exchange)
        .await
        .map_err(|_| HttpError::Timeout { url: url.to_string() })?
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One request on a fresh connection `io` (plain or TLS).
async fn round_trip<I>(io: I, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended");
        }
    });
    Ok(sender.send_request(req).await?)
}

/// A TLS client that trusts the CA certificates in PEM file `ca` and no
/// other root.
pub fn pinned_client(ca: &Path) -> Result<Arc<ClientConfig>, HttpError> {
    let bad = |reason: String| HttpError::Tls {
        url: ca.display().to_string(),
        reason,
    };
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(e.to_string()))?;
    for cert in certs {
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no CA certificate in the file".into()));
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl HttpError {
    /// A status other than 2xx, with the start of the body's text.
    pub fn status(url: &str, status: StatusCode, body: &[u8]) -> HttpError {
        HttpError::Status {
            url: url.to_string(),
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string(),
        }
    }
}

/// Sends a request (over `tls` for `https://`) and reads the whole
/// (bounded) body, whatever the status: the status, the headers and the
/// body.
pub async fn fetch_with_head(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(StatusCode, hyper::HeaderMap, Bytes), HttpError> {
    let resp = send_with(method, url, headers, body, tls).await?;
    let (head, body) = resp.into_parts();
    let bytes = Limited::new(body, MAX_SMALL_BODY)
        .collect()
        .await
        .map_err(|source| HttpError::Protocol {
            url: url.to_string(),
            source,
        })?
        .to_bytes();
    Ok((head.status, head.headers, bytes))
}

/// Sends a request and reads the whole (bounded) body; a status other than
/// 2xx is an error carrying the body's text.
pub async fn fetch_small(method: &str, url: &str, headers: &[(&str, String)], body: Bytes) -> Result<Bytes, HttpError> {
    let (status, _, bytes) = fetch_with_head(method, url, headers, body, None).await?;
    if !status.is_success() {
        return Err(HttpError::status(url, status, &bytes));
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
        assert!(!t.tls);
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
        let t = Target::parse("https://fill.example/v1").unwrap();
        assert_eq!((t.port, t.tls), (443, true));
        for bad in [
            "ftp://x",
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
