//! Getting envelopes and payloads into the staging directory (DESIGN.md §5 step 3).
//!
//! A [`Source`] is an `http://` or `https://` URL, a `file://` URL or a plain path (an
//! offline update from a USB stick). [`Fetcher::fetch`] copies it into a staging file:
//!
//! * **bounded**: the caller gives the largest size the verified plan allows; a server that
//!   announces more is refused before any byte is stored, and one that sends more is cut off
//!   as soon as it does, its bytes discarded. A hostile server cannot fill the disk.
//! * **resumable**: bytes arrive in `DEST.partial`, with the URL and the server's validator
//!   (strong `ETag`, else `Last-Modified`) in `DEST.partial.json`. A later attempt, in this
//!   process or after a reboot, asks for the rest with `Range` and `If-Range`; a `206` with
//!   the matching `Content-Range` appends, a `200` (server without ranges, or a changed
//!   resource) starts over cleanly.
//! * **retried**: transport failures, timeouts and 408/425/429/5xx answers are retried with
//!   exponential backoff, [`RetryPolicy::attempts`] failures in a row at most; an attempt that
//!   stored new bytes resets the count. Other answers (404, 403, ...) and TLS certificate
//!   errors fail at once: repeating them cannot help.
//! * **durable**: the staged file is fsynced and renamed to `DEST` before success is
//!   reported.
//! * **observable**: a [`Progress`] receives every step; [`progress::for_stderr`] picks an
//!   indicatif bar on a terminal and `tracing` logs otherwise.
//!
//! Local files are copied rather than used in place, so that the bytes the TA approves are
//! the bytes later written, even if the stick is changed or removed in between.
//!
//! HTTPS uses rustls (ring provider) with the config's CA files and, unless disabled, the
//! system's CA store; redirects are followed, but never from `https://` to `http://`
//! ([`FetchError::Downgrade`]). No proxy from the environment is used, and responses are requested
//! without content encoding, so that byte ranges and sizes are those of the file itself.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use url::Url;

use super::atomic;
use super::config::{HttpConfig, RetryPolicy};

mod http;
pub mod progress;

pub use http::ApiMethod;

pub use progress::Progress;

/// Where an envelope or payload comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An `http://` or `https://` URL.
    Http(Url),
    /// A local file (`file://` URL or plain path).
    File(PathBuf),
}

impl Source {
    /// Parses a URL (`http://`, `https://`, `file:`) or a plain path.
    pub fn parse(text: &str) -> Result<Source, FetchError> {
        let invalid = |reason: String| FetchError::InvalidSource {
            origin: text.to_string(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("empty".into()));
        }
        let lower = text.to_ascii_lowercase();
        let is_url = ["http://", "https://", "file:"]
            .iter()
            .any(|prefix| lower.starts_with(prefix));
        if is_url {
            let url = Url::parse(text).map_err(|e| invalid(e.to_string()))?;
            return Source::from_url(&url);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(invalid(format!(
                "unsupported scheme {scheme:?} (http, https, file or a path)"
            )));
        }
        Ok(Source::File(PathBuf::from(text)))
    }

    /// The source a URL names (`http`, `https` or `file`).
    pub fn from_url(url: &Url) -> Result<Source, FetchError> {
        let invalid = |reason: &str| FetchError::InvalidSource {
            origin: url.to_string(),
            reason: reason.to_string(),
        };
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(Source::Http(url.clone())),
            "http" | "https" => Err(invalid("the URL has no host")),
            "file" => url
                .to_file_path()
                .map(Source::File)
                .map_err(|()| invalid("not a local file path")),
            _ => Err(invalid("unsupported scheme (http, https, file or a path)")),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Http(url) => f.write_str(url.as_str()),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a successful fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Size of the staged file in bytes.
    pub size: u64,
    /// Where the successful transfer started: the bytes kept from an interrupted earlier
    /// attempt or download (0 when the whole file was transferred).
    pub resumed_from: u64,
    /// Requests made (1 when the first one succeeded).
    pub attempts: u32,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source is not something the agent can fetch.
    #[error("cannot fetch {origin:?}: {reason}")]
    InvalidSource {
        /// The source as given.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTPS trust roots could not be loaded.
    #[error("HTTPS trust roots: {0}")]
    TrustRoots(String),
    /// The server answered with an error status.
    #[error("{url}: the server answered HTTP {status}{}", reason_phrase(*status))]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The connection failed, timed out or broke off.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The TLS handshake failed (for example, a certificate no configured CA vouches for).
    #[error("{url}: TLS: {reason}")]
    Tls {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// An `https://` request was redirected to a plain `http://` URL, which is refused: the
    /// redirect would drop the server's authentication.
    #[error("{url}: refusing the redirect to {to}: a downgrade from https to http")]
    Downgrade {
        /// The URL requested.
        url: String,
        /// Where the server redirected to.
        to: String,
    },
    /// The request itself is wrong (bad URL, redirect loop).
    #[error("{url}: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The server's answer does not fit the request (wrong `Content-Range`, short body).
    #[error("{url}: {reason}")]
    Protocol {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The source is larger than the update allows; nothing of it is kept.
    #[error("{origin}: larger than the {limit} bytes this update allows ({})", if *announced { format!("announced {size} bytes") } else { format!("sent more than {limit} bytes") })]
    TooLarge {
        /// The source.
        origin: String,
        /// The largest size allowed.
        limit: u64,
        /// The size announced, or the bytes received when it was cut off.
        size: u64,
        /// Whether `size` was announced (`Content-Length`, file size) rather than received.
        announced: bool,
    },
    /// A local file could not be read or written.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// Every attempt allowed by the retry policy failed.
    #[error("{origin}: giving up after {attempts} failed attempts; last error: {last}")]
    GaveUp {
        /// The source.
        origin: String,
        /// Attempts that failed in a row.
        attempts: u32,
        /// The last failure.
        last: Box<FetchError>,
    },
}

impl FetchError {
    /// Whether another attempt may succeed (transport trouble, 408/425/429/5xx, a
    /// misbehaving answer); the rest fails the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => {
                matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504)
            }
            FetchError::Transport { .. } | FetchError::Protocol { .. } => true,
            _ => false,
        }
    }

    fn io(action: &'static str, path: &Path, error: io::Error) -> FetchError {
        FetchError::Io {
            action,
            path: path.to_path_buf(),
            error,
        }
    }
}

fn reason_phrase(status: u16) -> String {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

/// Downloads and copies sources into staging files.
#[derive(Debug, Clone)]
pub struct Fetcher {
    http: http::HttpClient,
    retry: RetryPolicy,
    artifacts: Vec<ServerArtifact>,
}

/// A file a fleet server offers with a deployment: a payload whose manifest URI ends in
/// `name` is downloaded from `url` instead (see [`Fetcher::set_artifacts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArtifact {
    /// The artifact's file name.
    pub name: String,
    /// Where the server serves it.
    pub url: Url,
    /// The `Authorization` header the server wants, if any.
    pub authorization: Option<String>,
}

impl Fetcher {
    /// A fetcher with the config's HTTP settings and retry policy. Fails when a CA file
    /// cannot be read or holds no certificate.
    pub fn new(http: &HttpConfig, retry: &RetryPolicy) -> Result<Fetcher, FetchError> {
        Ok(Fetcher {
            http: http::HttpClient::new(http)?,
            retry: retry.clone(),
            artifacts: Vec::new(),
        })
    }

    /// The files a fleet server offers with the deployment being installed (empty: none).
    /// While set, an `http(s)` source whose last path segment is an artifact's name is
    /// downloaded from the artifact's URL with its credentials: the manifest's (signed) URI
    /// names the file, the server serves it, and the TA checks its digest and size as it
    /// would from the URI.
    pub fn set_artifacts(&mut self, artifacts: Vec<ServerArtifact>) {
        self.artifacts = artifacts;
    }

    /// The fleet server's artifact for `url`, if one is set.
    fn artifact_for(&self, url: &Url) -> Option<&ServerArtifact> {
        let name = url.path_segments()?.next_back()?;
        self.artifacts
            .iter()
            .find(|a| !name.is_empty() && a.name == name)
    }

    /// Sends `body` to `url` with a POST (reports), retried like downloads.
    pub fn post(&self, url: &Url, content_type: &str, body: &[u8]) -> Result<(), FetchError> {
        let mut failures = 0;
        loop {
            match self.http.post(url, content_type, body) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && failures + 1 < self.retry.attempts.get() => {
                    failures += 1;
                    std::thread::sleep(self.retry.backoff(failures));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One API request (a fleet server's JSON endpoints), not retried: see
    /// [`http::HttpClient::call`].
    pub fn call(
        &self,
        method: ApiMethod,
        url: &Url,
        headers: &[(&str, &str)],
        json: Option<&[u8]>,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        self.http.call(method, url, headers, json, limit)
    }

    /// Opens `source` as a stream from byte `offset` (HTTP `Range`), for a one-pass install:
    /// the reader (at most `max_size - offset` bytes pass) and the offset it starts at
    /// (`offset`, or 0 when an HTTP server ignored the range).
    pub fn open(
        &self,
        source: &Source,
        offset: u64,
        max_size: u64,
    ) -> Result<(Box<dyn std::io::Read + Send>, u64), FetchError> {
        let (reader, start) = match source {
            Source::File(path) => {
                use std::io::{Seek, SeekFrom};
                let mut f =
                    std::fs::File::open(path).map_err(|e| FetchError::io("open", path, e))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| FetchError::io("seek", path, e))?;
                (Box::new(f) as Box<dyn std::io::Read + Send>, offset)
            }
            Source::Http(url) => match self.artifact_for(url) {
                Some(artifact) => {
                    tracing::info!("{url}: streaming the fleet server's {}", artifact.url);
                    let auth = artifact.authorization.as_deref();
                    self.http.open(&artifact.url, auth, offset, max_size)?
                }
                None => self.http.open(url, None, offset, max_size)?,
            },
        };
        // One byte more than allowed is read, so that a longer source is noticed.
        let bound = max_size.saturating_sub(start).saturating_add(1);
        Ok((Box::new(std::io::Read::take(reader, bound)), start))
    }

    /// Fetches `source` into the file `dest` (whose directory must exist), refusing more
    /// than `max_size` bytes. An interrupted earlier download of the same URL into the same
    /// `dest` is resumed. On success `dest` is complete and durable; a `dest` that existed
    /// before is replaced.
    pub fn fetch(
        &self,
        source: &Source,
        dest: &Path,
        max_size: u64,
        progress: &mut dyn Progress,
    ) -> Result<Fetched, FetchError> {
        let staged = Staged::new(dest);
        let fetched = match source {
            Source::File(path) => copy_local(path, &staged, max_size, progress)?,
            Source::Http(url) => match self.artifact_for(url) {
                Some(artifact) => {
                    tracing::info!("{url}: downloading the fleet server's {}", artifact.url);
                    let auth = artifact.authorization.as_deref();
                    self.download(&artifact.url, auth, &staged, max_size, progress)?
                }
                None => self.download(url, None, &staged, max_size, progress)?,
            },
        };
        staged.complete()?;
        progress.finished(fetched.size);
        Ok(fetched)
    }

    fn download(
        &self,
        url: &Url,
        authorization: Option<&str>,
        staged: &Staged,
        max_size: u64,
        progress: &mut dyn Progress,
    ) -> Result<Fetched, FetchError> {
        let mut attempts = 0;
        let mut failures = 0;
        loop {
            attempts += 1;
            let before = staged.partial_length();
            let error = match self
                .http
                .attempt(url, authorization, staged, max_size, progress)
            {
                Ok(transfer) => {
                    return Ok(Fetched {
                        size: transfer.size,
                        resumed_from: transfer.start,
                        attempts,
                    })
                }
                Err(error) if error.is_retryable() => error,
                Err(error) => return Err(error),
            };
            if staged.partial_length() > before {
                failures = 0;
            }
            failures += 1;
            if failures >= self.retry.attempts.get() {
                return Err(FetchError::GaveUp {
                    origin: url.to_string(),
                    attempts: failures,
                    last: Box::new(error),
                });
            }
            let delay = self.retry.backoff(failures);
            tracing::debug!(%url, %error, ?delay, "download attempt failed; retrying");
            progress.retrying(&error, failures, delay);
            std::thread::sleep(delay);
        }
    }
}

/// The staging file of one fetch: `DEST.partial` while it grows, with its origin in
/// `DEST.partial.json`, renamed to `DEST` when complete.
struct Staged {
    dest: PathBuf,
    partial: PathBuf,
    meta: PathBuf,
}

impl Staged {
    fn new(dest: &Path) -> Staged {
        let with_suffix = |suffix: &str| {
            let mut name = OsString::from(dest.as_os_str());
            name.push(suffix);
            PathBuf::from(name)
        };
        Staged {
            dest: dest.to_path_buf(),
            partial: with_suffix(".partial"),
            meta: with_suffix(".partial.json"),
        }
    }

    fn partial_length(&self) -> u64 {
        fs::metadata(&self.partial).map(|m| m.len()).unwrap_or(0)
    }

    /// Starts the partial file afresh (empty, durable) and returns it open for writing.
    fn restart(&self) -> Result<File, FetchError> {
        let file =
            File::create(&self.partial).map_err(|e| FetchError::io("create", &self.partial, e))?;
        file.sync_all()
            .map_err(|e| FetchError::io("sync", &self.partial, e))?;
        Ok(file)
    }

    /// Removes the partial download and its origin.
    fn discard(&self) -> Result<(), FetchError> {
        for path in [&self.partial, &self.meta] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(FetchError::io("remove", path, e)),
            }
        }
        Ok(())
    }

    /// Renames the (synced) partial file to its final name, durably.
    fn complete(&self) -> Result<(), FetchError> {
        fs::rename(&self.partial, &self.dest)
            .map_err(|e| FetchError::io("rename the staged file to", &self.dest, e))?;
        self.discard()?;
        let dir = atomic::parent_dir(&self.dest);
        atomic::sync_dir(dir).map_err(|e| FetchError::io("sync", dir, e))
    }
}

/// Why [`copy_bounded`] stopped.
enum CopyError {
    /// Reading the source failed.
    Read(io::Error),
    /// Writing or syncing the staged file failed.
    Write(io::Error),
    /// The source passed the size limit; the total it would have reached.
    TooLarge(u64),
}

/// Copies `reader` to the end of `out` (which holds `start` bytes) and fsyncs `out`,
/// stopping as soon as the total would pass `max_size`. Returns the total size.
fn copy_bounded(
    reader: &mut dyn Read,
    out: &mut File,
    start: u64,
    max_size: u64,
    progress: &mut dyn Progress,
) -> Result<u64, CopyError> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut done = start;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        let total = done + n as u64;
        if total > max_size {
            return Err(CopyError::TooLarge(total));
        }
        out.write_all(&buffer[..n]).map_err(CopyError::Write)?;
        done = total;
        progress.advanced(done);
    }
    out.sync_all().map_err(CopyError::Write)?;
    Ok(done)
}

fn copy_local(
    path: &Path,
    staged: &Staged,
    max_size: u64,
    progress: &mut dyn Progress,
) -> Result<Fetched, FetchError> {
    let name = path.display().to_string();
    let mut input = File::open(path).map_err(|e| FetchError::io("open", path, e))?;
    let metadata = input
        .metadata()
        .map_err(|e| FetchError::io("inspect", path, e))?;
    let announced = metadata.is_file().then_some(metadata.len());
    staged.discard()?;
    if let Some(size) = announced.filter(|&size| size > max_size) {
        return Err(FetchError::TooLarge {
            origin: name,
            limit: max_size,
            size,
            announced: true,
        });
    }
    let mut out = staged.restart()?;
    progress.started(&name, 0, announced);
    match copy_bounded(&mut input, &mut out, 0, max_size, progress) {
        Ok(size) => Ok(Fetched {
            size,
            resumed_from: 0,
            attempts: 1,
        }),
        Err(error) => {
            staged.discard()?;
            Err(match error {
                CopyError::Read(e) => FetchError::io("read", path, e),
                CopyError::Write(e) => FetchError::io("write", &staged.partial, e),
                CopyError::TooLarge(size) => FetchError::TooLarge {
                    origin: name,
                    limit: max_size,
                    size,
                    announced: false,
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            Source::parse("https://example.com/a.suit").unwrap(),
            Source::Http(Url::parse("https://example.com/a.suit").unwrap())
        );
        assert_eq!(
            Source::parse("HTTP://example.com/a.suit")
                .unwrap()
                .to_string(),
            "http://example.com/a.suit"
        );
        assert_eq!(
            Source::parse("file:///media/usb/update%20v2.suit").unwrap(),
            Source::File("/media/usb/update v2.suit".into())
        );
        assert_eq!(
            Source::parse("/media/usb/u.suit").unwrap(),
            Source::File("/media/usb/u.suit".into())
        );
        assert_eq!(
            Source::parse("relative/u.suit").unwrap(),
            Source::File("relative/u.suit".into())
        );
        for bad in [
            "",
            "ftp://example.com/x",
            "http://",
            "file://remote.example/x",
        ] {
            let err = Source::parse(bad).unwrap_err();
            assert!(
                matches!(err, FetchError::InvalidSource { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn retryable_errors() {
        let status = |status| FetchError::Status {
            url: "u".into(),
            status,
        };
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 416] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        assert_eq!(
            status(404).to_string(),
            "u: the server answered HTTP 404 Not Found"
        );
        let tls = FetchError::Tls {
            url: "u".into(),
            reason: "x".into(),
        };
        assert!(!tls.is_retryable());
    }

    #[test]
    fn local_copy_is_bounded_and_staged_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        fs::write(&input, vec![7u8; 100_000]).unwrap();
        let dest = dir.path().join("out.bin");
        let staged = Staged::new(&dest);
        let fetched = copy_local(&input, &staged, 100_000, &mut progress::NoProgress).unwrap();
        assert_eq!(fetched.size, 100_000);
        staged.complete().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), vec![7u8; 100_000]);
        assert!(!staged.partial.exists() && !staged.meta.exists());

        let err = copy_local(&input, &staged, 99_999, &mut progress::NoProgress).unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::TooLarge {
                    announced: true,
                    size: 100_000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!staged.partial.exists());
    }

    #[test]
    fn endless_local_source_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let staged = Staged::new(&dir.path().join("zero"));
        let err = copy_local(
            Path::new("/dev/zero"),
            &staged,
            200_000,
            &mut progress::NoProgress,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::TooLarge {
                    announced: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!staged.partial.exists());
    }
}
