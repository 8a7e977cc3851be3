//! The one-pass install end to end (docs/streaming.md): the real `suit-agent` with the
//! simulator TA, payloads and their dm-verity trees from a real nginx (and, for a connection
//! that drops, from a small server of the test's own): no staging file, the slot written as
//! the TA releases blocks, a power cut resumed with `Range` from the last synced block, a
//! dropped connection resumed in the same run, a tampered block that stops the stream.

#[path = "support/agent_config.rs"]
mod agent_config;
#[allow(dead_code)]
#[path = "support/debian.rs"]
mod debian;
#[allow(dead_code)]
#[path = "support/nginx.rs"]
mod nginx;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_config::{agent_ok, run_agent, AgentConfig};
use nginx::Nginx;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

/// A simulated device whose agent uses 64 KiB invokes.
fn device() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slot-a.img"), image(1, 64 * 1024)).unwrap();
    let config = AgentConfig {
        quick_retry: true,
        ..AgentConfig::new(dir.path())
    }
    .write();
    (dir, config)
}

/// `suit-tool create` of a streaming manifest for `img` at `url`; returns the envelope and
/// the names of the payload and tree files it wrote in `dir`.
fn envelope(dir: &Path, img: &[u8], url: &str, encrypted: Option<&str>) -> (Vec<u8>, String) {
    std::fs::write(dir.join("v2.img"), img).unwrap();
    let encryption = match encrypted {
        Some(pem) => {
            std::fs::write(dir.join("device.pub.pem"), pem).unwrap();
            "[component.encryption]\nrecipient = \"device.pub.pem\"\n"
        }
        None => "",
    };
    let spec = dir.join("v2.toml");
    std::fs::write(
        &spec,
        format!(
            "sequence-number = 2\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
             [[component]]\nid = [\"rootfs\"]\nimage = \"v2.img\"\nuri = \"{url}\"\n\
             streaming = true\n{encryption}"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_suit-tool"))
        .args(["create", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(dir.join("v2.suit"))
        .arg("--key")
        .arg(repo().join("keys/dev-vendor-es384.priv.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let payload = if encrypted.is_some() {
        "v2.img.enc"
    } else {
        "v2.img"
    };
    (std::fs::read(dir.join("v2.suit")).unwrap(), payload.into())
}

fn publish(nginx: &Nginx, dir: &Path, payload: &str, at: &str) {
    nginx.put(at, &std::fs::read(dir.join(payload)).unwrap());
    nginx.put(
        &format!("{at}.verity"),
        &std::fs::read(dir.join(format!("{payload}.verity"))).unwrap(),
    );
}

fn public_key_pem(config: &Path) -> String {
    let info: serde_json::Value =
        serde_json::from_str(&agent_ok(config, &["info", "--json"])).unwrap();
    info["device-public-key-pem"].as_str().unwrap().to_string()
}

/// The dm-verity slot image of `img`: the image, zeros to the block, its tree.
fn slot_of(img: &[u8]) -> Vec<u8> {
    let salt = suit_shared::digest::DigestAlg::Sha256.digest(img);
    suit_shared::verity::slot_image(img, salt.as_bytes())
        .unwrap()
        .1
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn encrypted_stream_installs_without_staging_and_boots() {
    let nginx = Nginx::start();
    let (dev, config) = device();
    let work = tempfile::tempdir().unwrap();
    let img = image(2, 3 * 1024 * 1024 + 123);
    let pem = public_key_pem(&config);
    let (env, payload) = envelope(work.path(), &img, &nginx.url("v2.img.enc"), Some(&pem));
    nginx.put("v2.suit", &env);
    publish(&nginx, work.path(), &payload, "v2.img.enc");
    let out = agent_ok(&config, &["install", &nginx.url("v2.suit")]);
    assert!(out.contains("installed"), "{out}");
    assert_eq!(
        std::fs::read(dev.path().join("slot-b.img")).unwrap(),
        slot_of(&img)
    );
    // Nothing of the payload was staged.
    let staged: u64 = files_under(&dev.path().join("staging"))
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with(".suit"))
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert_eq!(staged, 0);
    // One request for the tree, one for the payload.
    let requests = nginx.requests();
    assert_eq!(
        requests.iter().filter(|r| r.uri == "/v2.img.enc").count(),
        1,
        "{requests:?}"
    );
    std::fs::write(dev.path().join("booted-slot"), "B\n").unwrap();
    let out = agent_ok(&config, &["boot-check"]);
    assert!(out.contains("confirmed"), "{out}");
}

#[test]
fn a_tampered_block_stops_the_stream_before_it_is_written() {
    let nginx = Nginx::start();
    let (dev, config) = device();
    let work = tempfile::tempdir().unwrap();
    let img = image(3, 2 * 1024 * 1024);
    let (env, payload) = envelope(work.path(), &img, &nginx.url("v2.img"), None);
    nginx.put("v2.suit", &env);
    publish(&nginx, work.path(), &payload, "v2.img");
    let mut bad = img.clone();
    let at = 1024 * 1024 + 5000;
    bad[at] ^= 1;
    nginx.put("v2.img", &bad);
    let out = run_agent(&config, &["install", &nginx.url("v2.suit")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("does not match the dm-verity tree"),
        "{stdout}"
    );
    let slot = std::fs::read(dev.path().join("slot-b.img")).unwrap_or_default();
    let block = at / 4096 * 4096;
    assert!(slot.len() <= block, "written up to {} bytes", slot.len());
    assert_eq!(slot, img[..slot.len()]);
    // Never activated: the boot state still boots A.
    let state = std::fs::read_to_string(dev.path().join("bootstate")).unwrap_or_default();
    assert!(!state.contains("B"), "{state}");
}

#[test]
fn a_power_cut_resumes_from_the_last_synced_block_with_range() {
    let nginx = Nginx::start();
    let (dev, config) = device();
    let work = tempfile::tempdir().unwrap();
    // 3 MiB at 512 KiB/s: six seconds; the agent syncs and journals every second.
    let img = image(4, 3 * 1024 * 1024);
    let (env, payload) = envelope(work.path(), &img, &nginx.url("slow/v2.img"), None);
    nginx.put("v2.suit", &env);
    publish(&nginx, work.path(), &payload, "slow/v2.img");
    let mut child = Command::new(env!("CARGO_BIN_EXE_suit-agent"))
        .args(["--tee", "simulator", "--config"])
        .arg(&config)
        .args(["install", &nginx.url("v2.suit")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = dev.path().join("state/journal.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.contains("\"streamed\"") {
            break;
        }
        assert!(Instant::now() < deadline, "no block was journaled: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    agent_ok(&config, &["install", &nginx.url("v2.suit")]);
    assert_eq!(
        std::fs::read(dev.path().join("slot-b.img")).unwrap(),
        slot_of(&img)
    );
    let payload: Vec<_> = nginx
        .requests()
        .into_iter()
        .filter(|r| r.uri == "/slow/v2.img")
        .collect();
    assert_eq!(payload.len(), 2, "{payload:?}");
    assert_eq!(payload[1].status, 206, "{payload:?}");
    let range = payload[1].range.clone().unwrap_or_default();
    let from: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{range:?}"));
    assert!(from > 0 && from.is_multiple_of(4096), "{range}");
    assert!(payload[1].body_bytes <= img.len() as u64 - from);
}

/// A server for one payload and its tree whose first payload response drops the
/// connection after `cut` bytes; it honours `Range` and records the ranges asked for.
fn dropping_server(
    payload: Vec<u8>,
    tree: Vec<u8>,
    cut: usize,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v2.img", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        let mut dropped = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap_or(0);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v
                        .trim()
                        .strip_suffix('-')
                        .and_then(|n| n.parse::<usize>().ok());
                }
            }
            let body = if path.ends_with(".verity") {
                &tree
            } else {
                &payload
            };
            seen.lock().unwrap().push(format!("{path} {range:?}"));
            let from = range.unwrap_or(0);
            let head = match range {
                Some(f) => format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {f}-{}/{}\r\n",
                    body.len() - 1,
                    body.len()
                ),
                None => "HTTP/1.1 200 OK\r\n".to_string(),
            };
            let _ = write!(
                stream,
                "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len() - from
            );
            if !dropped && !path.ends_with(".verity") {
                dropped = true;
                let _ = stream.write_all(&body[from..from + cut]);
                let _ = stream.flush();
                // A reset, not a clean end: the agent sees the body cut short.
                drop(stream);
                continue;
            }
            let _ = stream.write_all(&body[from..]);
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        }
    });
    (url, log)
}

#[test]
fn a_dropped_connection_resumes_with_range_in_the_same_run() {
    let (dev, config) = device();
    let work = tempfile::tempdir().unwrap();
    let img = image(5, 1024 * 1024 + 4096 * 3 + 17);
    let salt = suit_shared::digest::DigestAlg::Sha256.digest(&img);
    let (_, tree) = suit_shared::verity::build(&img, salt.as_bytes()).unwrap();
    let (url, log) = dropping_server(img.clone(), tree, 300_000);
    let (env, _) = envelope(work.path(), &img, &url, None);
    let env_path = work.path().join("v2.suit");
    std::fs::write(&env_path, env).unwrap();
    agent_ok(&config, &["install", env_path.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(dev.path().join("slot-b.img")).unwrap(),
        slot_of(&img)
    );
    let log = log.lock().unwrap().clone();
    let payload: Vec<_> = log.iter().filter(|l| l.starts_with("/v2.img ")).collect();
    assert_eq!(payload.len(), 2, "{log:?}");
    assert_eq!(payload[0], "/v2.img None", "{log:?}");
    // Resumed at a block boundary the TA released, not from 0.
    let from: usize = payload[1]
        .strip_prefix("/v2.img Some(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{log:?}"));
    assert!(
        from > 0 && from <= 300_000 && from.is_multiple_of(4096),
        "{log:?}"
    );
}
