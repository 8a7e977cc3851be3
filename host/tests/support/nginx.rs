//! A real nginx (Debian's nginx-light, installed when missing) for one test: HTTP and HTTPS
//! on free loopback ports, a test CA and server certificate made with rcgen, its own
//! document root and an access log that records what each request asked for. It runs as a
//! foreground child process, killed when the value is dropped.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::debian;

/// A running nginx.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// Port of plain HTTP.
    pub http_port: u16,
    /// Port of HTTPS (certificate for `127.0.0.1` and `localhost`).
    pub https_port: u16,
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Path and query.
    pub uri: String,
    /// Response status.
    pub status: u16,
    /// The request's `Range` header, if any.
    pub range: Option<String>,
    /// The request's `If-Range` header, if any.
    pub if_range: Option<String>,
    /// Body bytes sent.
    pub body_bytes: u64,
}

impl Nginx {
    /// Starts nginx; its document root is empty (see [`Nginx::put`]).
    ///
    /// Locations: everything under `/` is static; `/norange/` ignores `Range` (always the
    /// whole file, `200`); `/unavailable` always answers `503`; `/slow/` sends 512 KiB/s;
    /// `/reports/` accepts anything (`204`); `/to-http/X` redirects (`302`) to `X` over plain
    /// HTTP and `/to-https/X` to `X` over HTTPS, whichever port was asked.
    pub fn start() -> Nginx {
        debian::ensure_tool("nginx", "nginx-light");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("www/norange")).unwrap();
        fs::create_dir_all(root.join("tmp")).unwrap();
        write_certificates(root);
        for _ in 0..5 {
            let (http_port, https_port) = (free_port(), free_port());
            fs::write(root.join("nginx.conf"), config(root, http_port, https_port)).unwrap();
            let _ = fs::remove_file(root.join("error.log"));
            let mut child = Command::new("nginx")
                .arg("-p")
                .arg(root)
                .arg("-c")
                .arg(root.join("nginx.conf"))
                .arg("-e")
                .arg(root.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start nginx: {e}"));
            if wait_until_listening(&mut child, &[http_port, https_port]) {
                return Nginx {
                    child,
                    dir,
                    http_port,
                    https_port,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(root.join("error.log")).unwrap_or_default();
            // Another process may have taken a port between our check and nginx's bind.
            assert!(
                log.contains("Address already in use"),
                "nginx did not start:\n{log}"
            );
        }
        panic!("nginx could not bind free ports in 5 tries");
    }

    /// Puts a file in the document root (path relative to it) and returns its path.
    pub fn put(&self, path: &str, content: &[u8]) -> PathBuf {
        let file = self.dir.path().join("www").join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, content).unwrap();
        file
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.http_port)
    }

    /// `https://127.0.0.1:PORT/path`.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.https_port)
    }

    /// The test CA's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Every request served so far, in order. nginx logs a request just after answering
    /// it, so this waits until the log has stopped growing.
    pub fn requests(&self) -> Vec<Request> {
        let read = || fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let mut log = read();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let again = read();
            if again == log {
                break;
            }
            log = again;
        }
        log.lines()
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(fields.len(), 5, "unexpected access log line {line:?}");
                let optional = |v: &str| (!v.is_empty() && v != "-").then(|| v.to_string());
                Request {
                    uri: fields[0].to_string(),
                    status: fields[1].parse().unwrap(),
                    range: optional(fields[2]),
                    if_range: optional(fields[3]),
                    body_bytes: fields[4].parse().unwrap(),
                }
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether nginx listens on every port within 10 s (false if it exited).
fn wait_until_listening(child: &mut Child, ports: &[u16]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if ports
            .iter()
            .all(|&port| TcpStream::connect(("127.0.0.1", port)).is_ok())
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nginx did not listen within 10 s");
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(root: &Path, http_port: u16, https_port: u16) -> String {
    let root = root.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
http {{
    default_type application/octet-stream;
    log_format probe escape=none "$request_uri\t$status\t$http_range\t$http_if_range\t$body_bytes_sent";
    access_log {root}/access.log probe;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    root {root}/www;
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {root}/server.pem;
        ssl_certificate_key {root}/server.key;
        location /norange/ {{ max_ranges 0; }}
        location = /unavailable {{ return 503; }}
        location /slow/ {{ limit_rate 512k; }}
        location /reports/ {{ return 204; }}
        location ~ ^/to-http/(.*)$ {{ return 302 http://127.0.0.1:{http_port}/$1; }}
        location ~ ^/to-https/(.*)$ {{ return 302 https://127.0.0.1:{https_port}/$1; }}
    }}
}}
"#
    )
}

/// A test CA, and a server certificate it signs for 127.0.0.1 and localhost.
fn write_certificates(dir: &Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}
