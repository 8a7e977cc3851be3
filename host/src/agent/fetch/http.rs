//! One HTTP(S) download attempt, resuming a partial file with `Range`/`If-Range`.

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use serde::{Deserialize, Serialize};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use url::Url;

use super::{copy_bounded, CopyError, FetchError, Progress, Staged};
use crate::agent::atomic;
use crate::agent::config::HttpConfig;

/// The HTTP client: a ureq agent with the configured trust roots and timeouts.
#[derive(Debug, Clone)]
pub(super) struct HttpClient {
    agent: ureq::Agent,
    has_trust_roots: bool,
}

/// The methods of [`HttpClient::call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMethod {
    /// `GET`.
    Get,
    /// `PUT` with a JSON body.
    Put,
    /// `POST` with a JSON body.
    Post,
}

/// Where a partial download came from, kept beside it so a later attempt can resume it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialOrigin {
    /// The URL downloaded.
    url: String,
    /// The response's `ETag`, if any.
    etag: Option<String>,
    /// The response's `Last-Modified`, if any.
    last_modified: Option<String>,
}

impl PartialOrigin {
    /// The origin recorded at `path`, if there is a readable one.
    fn load(path: &Path) -> Option<PartialOrigin> {
        let bytes = fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn save(&self, path: &Path) -> Result<(), FetchError> {
        let json = serde_json::to_vec(self).map_err(|e| FetchError::Io {
            action: "encode",
            path: path.to_path_buf(),
            error: e.into(),
        })?;
        atomic::replace_file(path, &json).map_err(|e| FetchError::io("write", path, e))
    }

    /// The validator for `If-Range`: a strong `ETag`, else `Last-Modified` (weak entity
    /// tags cannot be used there, RFC 9110 §13.1.5).
    fn validator(&self) -> Option<&str> {
        self.etag
            .as_deref()
            .filter(|tag| !tag.starts_with("W/"))
            .or(self.last_modified.as_deref())
    }
}

/// A successful attempt: the staged file is complete.
pub(super) struct Transfer {
    /// Bytes that were already staged when this attempt's transfer started.
    pub start: u64,
    /// The complete size.
    pub size: u64,
}

/// A `Content-Range: bytes FIRST-LAST/TOTAL` header (`TOTAL` may be `*`).
#[derive(Debug, PartialEq, Eq)]
struct ContentRange {
    first: u64,
    last: u64,
    total: Option<u64>,
}

impl ContentRange {
    fn parse(text: &str) -> Option<ContentRange> {
        let (range, total) = text.trim().strip_prefix("bytes ")?.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        let total = match total {
            "*" => None,
            t => Some(t.parse().ok()?),
        };
        let range = ContentRange {
            first: first.parse().ok()?,
            last: last.parse().ok()?,
            total,
        };
        let consistent = range.first <= range.last && total.is_none_or(|t| range.last < t);
        consistent.then_some(range)
    }

    /// The size from a `416` answer's `Content-Range: bytes */TOTAL`.
    fn unsatisfied_total(text: &str) -> Option<u64> {
        text.trim().strip_prefix("bytes */")?.parse().ok()
    }
}

impl HttpClient {
    pub fn new(config: &HttpConfig) -> Result<HttpClient, FetchError> {
        let roots = trust_roots(config)?;
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&roots))
            .build();
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .accept_encoding("identity")
            .user_agent(concat!("suit-agent/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.response_timeout))
            .timeout_per_read(Some(config.read_timeout))
            .tls_config(tls)
            .build();
        Ok(HttpClient {
            agent: ureq::Agent::new_with_config(agent_config),
            has_trust_roots: !roots.is_empty(),
        })
    }

    /// POSTs `body` as `content_type` to `url`; any 2xx answer is success.
    pub fn post(&self, url: &Url, content_type: &str, body: &[u8]) -> Result<(), FetchError> {
        let url_text = url.as_str();
        let response = self
            .agent
            .post(url_text)
            .config()
            .https_only(url.scheme() == "https")
            .build()
            .header("Content-Type", content_type)
            .send(body)
            .map_err(|e| classify(url_text, e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(FetchError::Status {
                url: url_text.to_string(),
                status,
            })
        }
    }

    /// Refuses an `https` URL when no trust roots are configured.
    fn check_trust_roots(&self, url: &Url) -> Result<(), FetchError> {
        if url.scheme() == "https" && !self.has_trust_roots {
            return Err(FetchError::Tls {
                url: url.as_str().to_string(),
                reason: "no trust roots: set http.ca-files, or enable http.system-roots on a \
                         system with a CA store"
                    .into(),
            });
        }
        Ok(())
    }

    /// A GET of `url` with `authorization` as that header, from byte `offset` (`Range` when
    /// above 0). A redirect from https to http would drop the server's authentication (and
    /// the transfer's confidentiality): every hop of an https request must stay https.
    fn get_from(
        &self,
        url: &Url,
        authorization: Option<&str>,
        offset: u64,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let mut request = self
            .agent
            .get(url.as_str())
            .config()
            .https_only(url.scheme() == "https")
            .build();
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
        }
        request
    }

    /// One API request (`GET`, `PUT` or `POST` with a JSON body) with extra `headers`; returns
    /// the status and the body, refused when longer than `limit` bytes. Statuses are not
    /// errors here: the caller decides.
    pub fn call(
        &self,
        method: ApiMethod,
        url: &Url,
        headers: &[(&str, &str)],
        json: Option<&[u8]>,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        let url_text = url.as_str();
        self.check_trust_roots(url)?;
        let https_only = url.scheme() == "https";
        let body = json.unwrap_or_default();
        let response = match method {
            ApiMethod::Get => {
                let mut request = self
                    .agent
                    .get(url_text)
                    .config()
                    .https_only(https_only)
                    .build();
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
            ApiMethod::Put | ApiMethod::Post => {
                let request = match method {
                    ApiMethod::Put => self.agent.put(url_text),
                    _ => self.agent.post(url_text),
                };
                let mut request = request
                    .config()
                    .https_only(https_only)
                    .build()
                    .header("Content-Type", "application/json");
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.send(body)
            }
        };
        let mut response = response.map_err(|e| classify(url_text, e))?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge {
                    origin: url_text.to_string(),
                    limit,
                    size: limit,
                    announced: false,
                },
                e => classify(url_text, e),
            })?;
        Ok((status, bytes))
    }

    /// One request for `url` from byte `offset` (`Range` when above 0) whose body is read
    /// as a stream (one-pass install, nothing staged); returns the body and the offset of its
    /// first byte: `offset`, or 0 when the server sent the whole file.
    pub fn open(
        &self,
        url: &Url,
        authorization: Option<&str>,
        offset: u64,
        max_size: u64,
    ) -> Result<(Box<dyn std::io::Read + Send>, u64), FetchError> {
        let url_text = url.as_str();
        self.check_trust_roots(url)?;
        let request = self.get_from(url, authorization, offset);
        if offset > 0 {
            tracing::info!(url = url_text, offset, "resuming the stream with Range");
        }
        let response = request.call().map_err(|e| classify(url_text, e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let start = match status {
            200 => 0,
            206 => {
                let text = header("content-range").unwrap_or_default();
                match ContentRange::parse(&text) {
                    Some(range) if range.first == offset => offset,
                    _ => {
                        return Err(FetchError::Protocol {
                            url: url_text.to_string(),
                            reason: format!(
                                "asked for bytes from {offset}, got Content-Range {text:?}"
                            ),
                        })
                    }
                }
            }
            _ => {
                return Err(FetchError::Status {
                    url: url_text.to_string(),
                    status,
                })
            }
        };
        let length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(size) = length.filter(|&n| start.saturating_add(n) > max_size) {
            return Err(FetchError::TooLarge {
                origin: url_text.to_string(),
                limit: max_size,
                size: start.saturating_add(size),
                announced: true,
            });
        }
        Ok((Box::new(response.into_body().into_reader()), start))
    }

    /// One request for the rest of `url` (all of it when nothing can be resumed), appended
    /// to the partial file; with `authorization` as that header.
    pub fn attempt(
        &self,
        url: &Url,
        authorization: Option<&str>,
        staged: &Staged,
        max_size: u64,
        progress: &mut dyn Progress,
    ) -> Result<Transfer, FetchError> {
        let url_text = url.as_str();
        self.check_trust_roots(url)?;
        let origin = PartialOrigin::load(&staged.meta).filter(|o| o.url == url_text);
        let mut offset = origin.as_ref().map_or(0, |_| staged.partial_length());
        if offset > max_size {
            staged.discard()?;
            offset = 0;
        }
        let mut request = self.get_from(url, authorization, offset);
        if offset > 0 {
            if let Some(validator) = origin.as_ref().and_then(PartialOrigin::validator) {
                request = request.header("If-Range", validator);
            }
            tracing::debug!(url = url_text, offset, "resuming download");
        }
        let response = request.call().map_err(|e| classify(url_text, e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let protocol = |reason: String| FetchError::Protocol {
            url: url_text.to_string(),
            reason,
        };
        let too_large = |size: u64, announced: bool| FetchError::TooLarge {
            origin: url_text.to_string(),
            limit: max_size,
            size,
            announced,
        };
        let (start, total) = match status {
            200 => {
                let total = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
                if offset > 0 {
                    tracing::info!(
                        url = url_text,
                        offset,
                        "the server sent the whole file instead of the rest; starting over"
                    );
                }
                staged.discard()?;
                if let Some(size) = total.filter(|&size| size > max_size) {
                    return Err(too_large(size, true));
                }
                (0, total)
            }
            206 => {
                let text = header("content-range").unwrap_or_default();
                let Some(range) = ContentRange::parse(&text) else {
                    staged.discard()?;
                    return Err(protocol(format!(
                        "partial content with an unusable Content-Range {text:?}"
                    )));
                };
                if range.first != offset {
                    staged.discard()?;
                    return Err(protocol(format!(
                        "asked for bytes from {offset} but the server sent bytes from {}",
                        range.first
                    )));
                }
                let total = range.total.unwrap_or(range.last + 1);
                if total > max_size {
                    staged.discard()?;
                    return Err(too_large(total, true));
                }
                (offset, Some(total))
            }
            416 if offset > 0 => {
                let total =
                    header("content-range").and_then(|v| ContentRange::unsatisfied_total(&v));
                if total == Some(offset) {
                    // Everything had arrived; only the final rename was missing. Make sure
                    // the bytes are on disk before they count as staged.
                    File::open(&staged.partial)
                        .and_then(|file| file.sync_all())
                        .map_err(|e| FetchError::io("sync", &staged.partial, e))?;
                    return Ok(Transfer {
                        start: offset,
                        size: offset,
                    });
                }
                staged.discard()?;
                return Err(protocol(format!(
                    "the server refused the range from byte {offset} (size {}); starting over",
                    total.map_or("unknown".to_string(), |t| t.to_string())
                )));
            }
            _ => {
                return Err(FetchError::Status {
                    url: url_text.to_string(),
                    status,
                })
            }
        };
        let mut out = if start == 0 {
            let file = staged.restart()?;
            PartialOrigin {
                url: url_text.to_string(),
                etag: header("etag"),
                last_modified: header("last-modified"),
            }
            .save(&staged.meta)?;
            file
        } else {
            OpenOptions::new()
                .append(true)
                .open(&staged.partial)
                .map_err(|e| FetchError::io("open", &staged.partial, e))?
        };
        progress.started(url_text, start, total);
        let mut body = response.into_body().into_reader();
        let done = match copy_bounded(&mut body, &mut out, start, max_size, progress) {
            Ok(done) => done,
            Err(CopyError::Read(e)) => {
                // Keep what arrived, durably, for the next attempt to resume.
                let _ = out.sync_all();
                return Err(FetchError::Transport {
                    url: url_text.to_string(),
                    reason: format!("download interrupted: {e}"),
                });
            }
            Err(CopyError::Write(e)) => return Err(FetchError::io("write", &staged.partial, e)),
            Err(CopyError::TooLarge(size)) => {
                staged.discard()?;
                return Err(too_large(size, false));
            }
        };
        match total {
            Some(total) if done != total => Err(protocol(format!(
                "the connection ended after {done} of {total} bytes"
            ))),
            _ => Ok(Transfer { start, size: done }),
        }
    }
}

/// The CA certificates of the config's files, plus the system's when enabled.
fn trust_roots(config: &HttpConfig) -> Result<Vec<Certificate<'static>>, FetchError> {
    let mut roots = Vec::new();
    for path in &config.ca_files {
        let pem = fs::read(path).map_err(|e| {
            FetchError::TrustRoots(format!("cannot read CA file {}: {e}", path.display()))
        })?;
        let before = roots.len();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => roots.push(cert),
                Ok(_) => {}
                Err(e) => {
                    return Err(FetchError::TrustRoots(format!(
                        "CA file {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        if roots.len() == before {
            return Err(FetchError::TrustRoots(format!(
                "CA file {} holds no PEM certificate",
                path.display()
            )));
        }
    }
    if config.system_roots {
        let system = rustls_native_certs::load_native_certs();
        for error in &system.errors {
            tracing::warn!(%error, "while loading the system's CA certificates");
        }
        roots.extend(
            system
                .certs
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned()),
        );
    }
    Ok(roots)
}

/// Sorts a ureq error into the kinds the retry logic tells apart.
fn classify(url: &str, error: ureq::Error) -> FetchError {
    let url = url.to_string();
    let reason = error.to_string();
    match error {
        ureq::Error::RequireHttpsOnly(to) => FetchError::Downgrade { url, to },
        ureq::Error::Tls(_) | ureq::Error::Pem(_) => FetchError::Tls { url, reason },
        ureq::Error::Rustls(ref tls) if is_about_the_peer(tls) => FetchError::Tls { url, reason },
        ureq::Error::Io(ref io)
            if io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(is_about_the_peer) =>
        {
            FetchError::Tls { url, reason }
        }
        ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::TooManyRedirects
        | ureq::Error::RedirectFailed
        | ureq::Error::InvalidProxyUrl => FetchError::Request { url, reason },
        _ => FetchError::Transport { url, reason },
    }
}

/// Whether a TLS failure is about the server's identity or abilities (its certificate, its
/// protocol support), which another attempt cannot change.
fn is_about_the_peer(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::InvalidCertRevocationList(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses_strictly() {
        assert_eq!(
            ContentRange::parse("bytes 100-199/200"),
            Some(ContentRange {
                first: 100,
                last: 199,
                total: Some(200)
            })
        );
        assert_eq!(
            ContentRange::parse("bytes 0-9/*").map(|r| r.total),
            Some(None)
        );
        for bad in [
            "",
            "bytes */200",
            "bytes 10-5/200",
            "bytes 0-200/200",
            "items 0-1/2",
            "bytes a-b/c",
        ] {
            assert_eq!(ContentRange::parse(bad), None, "{bad}");
        }
        assert_eq!(ContentRange::unsatisfied_total("bytes */4096"), Some(4096));
        assert_eq!(ContentRange::unsatisfied_total("bytes 0-1/2"), None);
    }

    #[test]
    fn validator_prefers_a_strong_etag() {
        let origin = |etag: Option<&str>, modified: Option<&str>| PartialOrigin {
            url: "u".into(),
            etag: etag.map(str::to_string),
            last_modified: modified.map(str::to_string),
        };
        let date = "Tue, 01 Jul 2025 10:00:00 GMT";
        assert_eq!(
            origin(Some("\"abc\""), Some(date)).validator(),
            Some("\"abc\"")
        );
        assert_eq!(
            origin(Some("W/\"abc\""), Some(date)).validator(),
            Some(date)
        );
        assert_eq!(origin(Some("W/\"abc\""), None).validator(), None);
        assert_eq!(origin(None, None).validator(), None);
    }

    #[test]
    fn missing_ca_file_is_reported() {
        let config = HttpConfig {
            ca_files: vec!["/nonexistent/ca.pem".into()],
            ..HttpConfig::default()
        };
        let err = HttpClient::new(&config).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "not a certificate\n").unwrap();
        let config = HttpConfig {
            ca_files: vec![empty],
            ..HttpConfig::default()
        };
        let err = HttpClient::new(&config).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
