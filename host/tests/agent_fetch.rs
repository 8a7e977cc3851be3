//! The agent's fetcher against a real nginx on loopback (HTTP and HTTPS with a test CA), a
//! fault-injecting relay in front of it for broken, stalled and dishonest transfers, and
//! local files. What the server saw is read back from nginx's access log.

#[path = "support/debian.rs"]
mod debian;
#[path = "support/nginx.rs"]
mod nginx;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nginx::{Nginx, Request};
use suit_host::agent::config::{HttpConfig, RetryPolicy};
use suit_host::agent::fetch::{FetchError, Fetched, Fetcher, Progress, Source};

const MIB: usize = 1024 * 1024;

/// Deterministic, incompressible test data.
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// What a fetch reported.
#[derive(Debug, Default)]
struct Recorder {
    starts: Vec<(u64, Option<u64>)>,
    last: u64,
    retries: Vec<(u32, Duration)>,
    finished: Option<u64>,
}

impl Progress for Recorder {
    fn started(&mut self, _source: &str, offset: u64, total: Option<u64>) {
        self.starts.push((offset, total));
    }
    fn advanced(&mut self, done: u64) {
        assert!(
            done >= self.last || self.starts.len() > 1,
            "progress went back"
        );
        self.last = done;
    }
    fn retrying(&mut self, _error: &FetchError, failures: u32, delay: Duration) {
        self.retries.push((failures, delay));
    }
    fn finished(&mut self, size: u64) {
        self.finished = Some(size);
    }
}

struct Client {
    fetcher: Fetcher,
}

impl Client {
    /// Short timeouts, backoff 100 ms doubling up to 400 ms.
    fn new(attempts: u32) -> Client {
        Client::with_http(attempts, HttpConfig::default())
    }

    fn with_http(attempts: u32, http: HttpConfig) -> Client {
        let http = HttpConfig {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_millis(700),
            ..http
        };
        let retry = RetryPolicy {
            attempts: NonZeroU32::new(attempts).unwrap(),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
        };
        Client {
            fetcher: Fetcher::new(&http, &retry).unwrap(),
        }
    }

    fn fetch(&self, url: &str, dest: &Path, max: usize) -> (Result<Fetched, FetchError>, Recorder) {
        let mut recorder = Recorder::default();
        let source = Source::parse(url).unwrap();
        let result = self.fetcher.fetch(&source, dest, max as u64, &mut recorder);
        (result, recorder)
    }
}

fn partial(dest: &Path) -> PathBuf {
    PathBuf::from(format!("{}.partial", dest.display()))
}

fn partial_meta(dest: &Path) -> PathBuf {
    PathBuf::from(format!("{}.partial.json", dest.display()))
}

fn assert_nothing_staged(dest: &Path) {
    for path in [dest.to_path_buf(), partial(dest), partial_meta(dest)] {
        assert!(!path.exists(), "{} was left behind", path.display());
    }
}

fn request(uri: &str, status: u16, range: Option<&str>, body_bytes: usize) -> Request {
    Request {
        uri: uri.to_string(),
        status,
        range: range.map(str::to_string),
        if_range: None,
        body_bytes: body_bytes as u64,
    }
}

/// Compares requests ignoring `If-Range`, which tests check on their own.
fn without_if_range(requests: Vec<Request>) -> Vec<Request> {
    requests
        .into_iter()
        .map(|r| Request {
            if_range: None,
            ..r
        })
        .collect()
}

/// How the relay misbehaves on the connections it breaks.
#[derive(Clone, Copy)]
enum Fault {
    /// Close both sides after this many response bytes.
    Cut(usize),
    /// Stop forwarding after this many response bytes, keeping the connection open.
    Stall(usize),
    /// Drop the response's `Content-Length` (the body then runs until the connection ends).
    HideLength,
}

/// A TCP relay to nginx that misbehaves on its first `faulty` connections.
struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: u16, fault: Fault, faulty: usize) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let count = AtomicUsize::new(0);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let fault = (n < faulty).then_some(fault);
                std::thread::spawn(move || relay(client, upstream, fault));
            }
        });
        Relay { port, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn relay(client: TcpStream, upstream: u16, fault: Option<Fault>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut from, mut to) = (server, client);
    match fault {
        None => {
            let _ = std::io::copy(&mut from, &mut to);
        }
        Some(Fault::Cut(limit)) => forward_at_most(&mut from, &mut to, limit),
        Some(Fault::Stall(limit)) => {
            forward_at_most(&mut from, &mut to, limit);
            std::thread::sleep(Duration::from_secs(10));
        }
        Some(Fault::HideLength) => {
            if let Some(head) = response_head_without_length(&mut from) {
                if to.write_all(&head).is_ok() {
                    let _ = std::io::copy(&mut from, &mut to);
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Forwards the first `limit` bytes of the response, then stops.
fn forward_at_most(from: &mut TcpStream, to: &mut TcpStream, limit: usize) {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut sent = 0;
    while sent < limit {
        let want = buffer.len().min(limit - sent);
        match from.read(&mut buffer[..want]) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    return;
                }
                sent += n;
            }
        }
    }
}

/// Reads the response head (and whatever body came with it) and returns it without its
/// `Content-Length`, marked `Connection: close`.
fn response_head_without_length(from: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let end = loop {
        let n = from.read(&mut buffer).ok().filter(|&n| n > 0)?;
        received.extend_from_slice(&buffer[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&received[..end]).to_string();
    let mut rewritten: Vec<u8> = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("content-length:"))
        .flat_map(|line| [line.as_bytes(), b"\r\n"].concat())
        .collect();
    rewritten.extend_from_slice(b"Connection: close\r\n\r\n");
    rewritten.extend_from_slice(&received[end + 4..]);
    Some(rewritten)
}

#[test]
fn full_download_over_http() {
    let server = Nginx::start();
    let content = data(3 * MIB + 17, 1);
    server.put("fw/rootfs.img", &content);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("rootfs.img");

    let (result, progress) = Client::new(3).fetch(&server.url("fw/rootfs.img"), &dest, 4 * MIB);
    let fetched = result.unwrap();
    assert_eq!(
        fetched,
        Fetched {
            size: content.len() as u64,
            resumed_from: 0,
            attempts: 1
        }
    );
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert!(!partial(&dest).exists() && !partial_meta(&dest).exists());
    assert_eq!(progress.starts, [(0, Some(content.len() as u64))]);
    assert_eq!(progress.last, content.len() as u64);
    assert_eq!(progress.finished, Some(content.len() as u64));
    assert_eq!(
        server.requests(),
        [request("/fw/rootfs.img", 200, None, content.len())]
    );

    // A second fetch replaces the staged file (no stale partial is involved).
    let (result, _) = Client::new(1).fetch(&server.url("fw/rootfs.img"), &dest, 4 * MIB);
    assert_eq!(result.unwrap().resumed_from, 0);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
}

#[test]
fn broken_connection_is_resumed_with_range_in_the_same_fetch() {
    let server = Nginx::start();
    let content = data(2 * MIB, 2);
    server.put("fw/app.img", &content);
    let relay = Relay::start(server.http_port, Fault::Cut(700_000), 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("app.img");

    let (result, progress) = Client::new(3).fetch(&relay.url("fw/app.img"), &dest, 2 * MIB);
    let fetched = result.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(fetched.attempts, 2);
    assert_eq!(progress.retries.len(), 1);
    let kept = progress.starts[1].0;
    assert!(kept > 0 && kept < 700_000, "kept {kept} bytes");
    assert_eq!(fetched.resumed_from, kept);
    assert_eq!(
        progress.starts,
        [(0, Some(2 * MIB as u64)), (kept, Some(2 * MIB as u64))]
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].status, 200);
    assert_eq!(requests[0].range, None);
    assert_eq!(requests[1].status, 206);
    assert_eq!(
        requests[1].range.as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!(requests[1].body_bytes, (content.len() as u64) - kept);
    let etag = requests[1].if_range.as_deref().expect("If-Range sent");
    assert!(
        etag.starts_with('"'),
        "If-Range {etag:?} is not nginx's ETag"
    );
}

#[test]
fn interrupted_download_is_resumed_by_a_later_fetch() {
    let server = Nginx::start();
    let content = data(2 * MIB + 5, 3);
    server.put("fw/app.img", &content);
    let relay = Relay::start(server.http_port, Fault::Cut(1_000_000), 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("app.img");

    // One attempt only: the fetch fails and leaves the partial download behind, as a power
    // cut or a killed agent would.
    let (result, _) = Client::new(1).fetch(&relay.url("fw/app.img"), &dest, 3 * MIB);
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::GaveUp { attempts: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("interrupted"), "{err}");
    let kept = std::fs::metadata(partial(&dest)).unwrap().len();
    assert!(kept > 0 && kept < 1_000_000, "kept {kept}");
    assert!(!dest.exists());

    // A new fetcher (a new agent process) resumes from there.
    let (result, progress) = Client::new(2).fetch(&relay.url("fw/app.img"), &dest, 3 * MIB);
    let fetched = result.unwrap();
    assert_eq!(fetched.resumed_from, kept);
    assert_eq!(fetched.attempts, 1);
    assert_eq!(progress.starts, [(kept, Some(content.len() as u64))]);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert!(!partial(&dest).exists() && !partial_meta(&dest).exists());
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    // How much of the cut response nginx had handed to the kernel varies; the rest does not.
    assert_eq!(
        (requests[0].status, requests[0].range.as_deref()),
        (200, None)
    );
    assert_eq!(
        without_if_range(requests[1..].to_vec()),
        [request(
            "/fw/app.img",
            206,
            Some(&format!("bytes={kept}-")),
            content.len() - kept as usize
        )]
    );
    assert!(requests[1].if_range.is_some());
}

#[test]
fn stalled_transfer_times_out_and_resumes() {
    let server = Nginx::start();
    let content = data(MIB, 4);
    server.put("fw/stall.img", &content);
    let relay = Relay::start(server.http_port, Fault::Stall(300_000), 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("stall.img");

    let started = Instant::now();
    let (result, progress) = Client::new(3).fetch(&relay.url("fw/stall.img"), &dest, MIB);
    result.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "no read timeout waited"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(progress.retries.len(), 1);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    let requests = server.requests();
    assert_eq!(requests.last().map(|r| r.status), Some(206), "{requests:?}");
}

#[test]
fn server_ignoring_range_makes_the_download_start_over() {
    let server = Nginx::start();
    let content = data(2 * MIB, 5);
    server.put("norange/fw.img", &content);
    let relay = Relay::start(server.http_port, Fault::Cut(600_000), 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("fw.img");

    let (result, progress) = Client::new(3).fetch(&relay.url("norange/fw.img"), &dest, 2 * MIB);
    let fetched = result.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(fetched.attempts, 2);
    assert_eq!(fetched.resumed_from, 0);
    // The second transfer started from zero although a range was asked for.
    assert_eq!(progress.starts[1], (0, Some(content.len() as u64)));
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[1].range.is_some(),
        "the retry did not ask for a range"
    );
    assert_eq!(requests[1].status, 200);
    assert_eq!(requests[1].body_bytes, content.len() as u64);
}

#[test]
fn changed_resource_makes_the_download_start_over() {
    let server = Nginx::start();
    let old = data(2 * MIB, 6);
    server.put("fw/moving.img", &old);
    let relay = Relay::start(server.http_port, Fault::Cut(800_000), 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("moving.img");
    let (result, _) = Client::new(1).fetch(&relay.url("fw/moving.img"), &dest, 3 * MIB);
    assert!(result.is_err());
    assert!(std::fs::metadata(partial(&dest)).unwrap().len() > 0);

    // The file changes on the server (a new ETag): If-Range gets the whole new file.
    let new = data(2 * MIB + 1000, 7);
    server.put("fw/moving.img", &new);
    let (result, progress) = Client::new(1).fetch(&relay.url("fw/moving.img"), &dest, 3 * MIB);
    assert_eq!(result.unwrap().resumed_from, 0);
    assert_eq!(std::fs::read(&dest).unwrap(), new);
    assert_eq!(progress.starts, [(0, Some(new.len() as u64))]);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[1].range.is_some() && requests[1].if_range.is_some());
    assert_eq!(requests[1].status, 200);
}

#[test]
fn complete_partial_download_is_finished_without_a_body() {
    let server = Nginx::start();
    let content = data(100_000, 8);
    server.put("fw/done.img", &content);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("done.img");
    // Everything arrived, then the agent died before the final rename.
    std::fs::write(partial(&dest), &content).unwrap();
    let url = server.url("fw/done.img");
    std::fs::write(
        partial_meta(&dest),
        format!(r#"{{"url":"{url}","etag":null,"last_modified":null}}"#),
    )
    .unwrap();

    let (result, _) = Client::new(1).fetch(&url, &dest, MIB);
    assert_eq!(result.unwrap().resumed_from, content.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].status, 416);
    assert_eq!(requests[0].range.as_deref(), Some("bytes=100000-"));
}

#[test]
fn announced_size_above_the_bound_is_refused_before_download() {
    let server = Nginx::start();
    server.put("fw/big.img", &data(MIB + 1, 9));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.img");

    let (result, progress) = Client::new(3).fetch(&server.url("fw/big.img"), &dest, MIB);
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { announced: true, size, limit, .. } if size == MIB as u64 + 1 && limit == MIB as u64),
        "{err}"
    );
    assert!(
        err.to_string().contains("larger than the 1048576 bytes"),
        "{err}"
    );
    assert!(progress.starts.is_empty() && progress.retries.is_empty());
    assert_nothing_staged(&dest);
    assert_eq!(
        server.requests().len(),
        1,
        "a size refusal must not be retried"
    );
}

#[test]
fn server_sending_more_than_the_bound_is_cut_off() {
    let server = Nginx::start();
    server.put("fw/endless.img", &data(8 * MIB, 10));
    let relay = Relay::start(server.http_port, Fault::HideLength, usize::MAX);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("endless.img");

    let (result, progress) = Client::new(3).fetch(&relay.url("fw/endless.img"), &dest, MIB);
    let err = result.unwrap_err();
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
    assert!(
        err.to_string().contains("sent more than 1048576 bytes"),
        "{err}"
    );
    assert_eq!(progress.starts, [(0, None)]);
    assert!(
        progress.last <= MIB as u64,
        "stored {} bytes",
        progress.last
    );
    assert!(progress.retries.is_empty());
    assert_nothing_staged(&dest);
}

#[test]
fn not_found_fails_at_once() {
    let server = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("missing.img");
    let (result, progress) = Client::new(4).fetch(&server.url("fw/missing.img"), &dest, MIB);
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 404, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("HTTP 404 Not Found"), "{err}");
    assert!(progress.retries.is_empty());
    assert_eq!(server.requests().len(), 1);
    assert_nothing_staged(&dest);
}

#[test]
fn unavailable_server_is_retried_with_backoff() {
    let server = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.img");
    let started = Instant::now();
    let (result, progress) = Client::new(3).fetch(&server.url("unavailable"), &dest, MIB);
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::GaveUp { attempts: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(
        progress.retries,
        [
            (1, Duration::from_millis(100)),
            (2, Duration::from_millis(200))
        ]
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 503]);
}

#[test]
fn refused_connection_is_retried_with_backoff() {
    let port = nginx::free_port();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.img");
    let started = Instant::now();
    let (result, progress) =
        Client::new(4).fetch(&format!("http://127.0.0.1:{port}/x"), &dest, MIB);
    let err = result.unwrap_err();
    let FetchError::GaveUp { attempts, last, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*attempts, 4);
    assert!(matches!(**last, FetchError::Transport { .. }), "{last}");
    assert_eq!(
        progress.retries,
        [
            (1, Duration::from_millis(100)),
            (2, Duration::from_millis(200)),
            (3, Duration::from_millis(400))
        ]
    );
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_nothing_staged(&dest);
}

#[test]
fn https_with_the_test_ca_succeeds() {
    let server = Nginx::start();
    let content = data(MIB / 2, 11);
    server.put("fw/secure.img", &content);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("secure.img");
    let client = Client::with_http(
        2,
        HttpConfig {
            ca_files: vec![server.ca_file()],
            system_roots: false,
            ..HttpConfig::default()
        },
    );
    let (result, _) = client.fetch(&server.https_url("fw/secure.img"), &dest, MIB);
    result.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn https_without_the_test_ca_is_rejected_at_once() {
    let server = Nginx::start();
    server.put("fw/secure.img", &data(1000, 12));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("secure.img");

    // Trusting another CA only: the server's certificate has no known issuer.
    let other_ca = dir.path().join("other-ca.pem");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Some other CA");
    let key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(&other_ca, params.self_signed(&key).unwrap().pem()).unwrap();
    let client = Client::with_http(
        3,
        HttpConfig {
            ca_files: vec![other_ca],
            system_roots: false,
            ..HttpConfig::default()
        },
    );
    let (result, progress) = client.fetch(&server.https_url("fw/secure.img"), &dest, MIB);
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(
        progress.retries.is_empty(),
        "a certificate error was retried"
    );
    assert!(server.requests().is_empty());
    assert_nothing_staged(&dest);

    // No roots at all: refused before connecting.
    let client = Client::with_http(
        3,
        HttpConfig {
            system_roots: false,
            ..HttpConfig::default()
        },
    );
    let (result, _) = client.fetch(&server.https_url("fw/secure.img"), &dest, MIB);
    let err = result.unwrap_err();
    assert!(err.to_string().contains("no trust roots"), "{err}");
}

#[test]
fn local_files_by_path_and_file_url() {
    let dir = tempfile::tempdir().unwrap();
    let usb = dir.path().join("usb dir");
    std::fs::create_dir(&usb).unwrap();
    let content = data(700_000, 13);
    let image = usb.join("update.img");
    std::fs::write(&image, &content).unwrap();
    let dest = dir.path().join("staged.img");
    let client = Client::new(1);

    let (result, progress) = client.fetch(image.to_str().unwrap(), &dest, MIB);
    assert_eq!(result.unwrap().size, content.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(progress.finished, Some(content.len() as u64));

    std::fs::remove_file(&dest).unwrap();
    let url = url::Url::from_file_path(&image).unwrap();
    assert!(url.as_str().contains("usb%20dir"), "{url}");
    let (result, _) = client.fetch(url.as_str(), &dest, MIB);
    result.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);

    let (result, _) = client.fetch(image.to_str().unwrap(), &dest, 1000);
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                announced: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        dest.exists(),
        "a failed fetch removed the previously staged file"
    );
    assert!(!partial(&dest).exists());

    let (result, _) = client.fetch(usb.join("missing.img").to_str().unwrap(), &dest, MIB);
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::Io { action: "open", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("missing.img"), "{err}");
}
