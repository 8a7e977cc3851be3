//! `suit-agent daemon` against a mock hawkBit DDI server on 127.0.0.1 (simulator TA, slots
//! and boot state in files): configData, a deployment installed and confirmed with its
//! signed SUIT report, a deployment the TA refuses (failure feedback once, no retry), cancel,
//! and the error paths (5xx, bad JSON, timeouts) with backoff instead of a retry storm.

#[path = "support/agent_config.rs"]
mod agent_config;
#[path = "support/ddi_device.rs"]
mod ddi_device;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_config::agent_ok;
use ddi_device::{envelope, envelope_with_uri, verified_report, Device, CLASS};
use serde_json::Value;

const BASE: &str = "/DEFAULT/controller/v1/dev-1";

/// The SUIT report of a feedback, verified (see [`verified_report`]).
fn feedback_report(dev: &Device, feedback: &Value) -> Value {
    let details = feedback["status"]["details"].as_array().unwrap();
    verified_report(dev, details.iter().filter_map(Value::as_str))
}

/// One request the mock received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the mock answers: status and body, or nothing at all (a hung server).
enum Answer {
    Json(u16, String),
    Bytes(Vec<u8>),
    Hang,
}

type Handler = Box<dyn Fn(&Request) -> Answer + Send + Sync>;

/// A DDI server: every request is recorded, `handler` answers it.
struct MockDdi {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl MockDdi {
    fn start(handler: Handler) -> MockDdi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || serve(stream, &seen, handler.as_ref()));
            }
        });
        MockDdi { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path))
            .count()
    }

    /// The JSON bodies of the feedbacks POSTed to `path`.
    fn feedbacks(&self, path: &str) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .map(Request::json)
            .collect()
    }

    /// Waits until `done` holds for the requests seen, at most `limit`.
    fn wait_for(&self, limit: Duration, done: impl Fn(&MockDdi) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        done(self)
    }
}

fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<Request>>,
    handler: &(dyn Fn(&Request) -> Answer + Send + Sync),
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut length, mut authorization) = (0, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let request = Request {
        method,
        path,
        authorization,
        body,
    };
    seen.lock().unwrap().push(request.clone());
    let (status, content_type, payload) = match handler(&request) {
        Answer::Json(status, text) => (status, "application/json", text.into_bytes()),
        Answer::Bytes(bytes) => (200, "application/octet-stream", bytes),
        Answer::Hang => {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
    };
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&payload);
}

/// The base resource with a 1 s sleep and the given `_links` (JSON object members).
fn base(links: &str) -> Answer {
    Answer::Json(
        200,
        format!(r#"{{"config":{{"polling":{{"sleep":"00:00:01"}}}},"_links":{{{links}}}}}"#),
    )
}

/// A deploymentBase of action `id` whose envelope (`bytes`) is served at
/// `.../artifacts/update.suit`; its announced digest is a stand-in (FNV-1a) that differs
/// between envelopes as a server's SHA-1 would.
fn deployment(port: u16, id: &str, bytes: &[u8]) -> Answer {
    let size = bytes.len();
    let digest = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    Answer::Json(
        200,
        format!(
            r#"{{"id":"{id}","deployment":{{"download":"forced","update":"forced","chunks":[{{"part":"os","version":"2","name":"fw","artifacts":[{{"filename":"update.suit","size":{size},"hashes":{{"sha1":"{digest:016x}"}},"_links":{{"download-http":{{"href":"http://127.0.0.1:{port}{BASE}/softwaremodules/1/artifacts/update.suit"}}}}}}]}}]}}}}"#
        ),
    )
}

/// A server offering action 7 with `envelope` (and asking for configData); the envelope
/// may be swapped while it runs (a new deployment under the same action id, as gooseBit's
/// plugin deployments all are).
fn offering(envelope: Arc<Mutex<Vec<u8>>>) -> MockDdi {
    let port = Arc::new(Mutex::new(0u16));
    let p = Arc::clone(&port);
    let mock = MockDdi::start(Box::new(move |r: &Request| {
        let port = *p.lock().unwrap();
        let envelope = envelope.lock().unwrap().clone();
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", BASE) => base(&format!(
                r#""configData":{{"href":"http://127.0.0.1:{port}{BASE}/configData"}},"deploymentBase":{{"href":"http://127.0.0.1:{port}{BASE}/deploymentBase/7?c=1"}}"#
            )),
            ("GET", path) if path.starts_with(&format!("{BASE}/deploymentBase/7")) => {
                deployment(port, "7", &envelope)
            }
            ("GET", path) if path.ends_with("/update.suit") => Answer::Bytes(envelope),
            _ => Answer::Json(200, "{}".into()),
        }
    }));
    *port.lock().unwrap() = mock.port;
    mock
}

/// The `data` of every configData sent, in order.
fn config_data(mock: &MockDdi) -> Vec<Value> {
    mock.requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == format!("{BASE}/configData"))
        .map(|r| r.json()["data"].clone())
        .collect()
}

const FEEDBACK: &str = "/DEFAULT/controller/v1/dev-1/deploymentBase/7/feedback";

fn closed(mock: &MockDdi) -> Vec<Value> {
    mock.feedbacks(FEEDBACK)
        .into_iter()
        .filter(|f| f["status"]["execution"] == "closed")
        .collect()
}

/// Renames the newest report (boot-check's) as if it had been made in the second of the one
/// before (the install's) by a process with a smaller id: names no longer sort by time.
fn same_second_names(dev: &Device) {
    let dir = dev.path("state/reports");
    let mut reports: Vec<(std::time::SystemTime, std::path::PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (std::fs::metadata(&path).unwrap().modified().unwrap(), path)
        })
        .collect();
    reports.sort();
    let [.., (_, earlier), (_, newest)] = &reports[..] else {
        panic!("expected the install's and boot-check's reports: {reports:?}")
    };
    let name = earlier.file_name().unwrap().to_str().unwrap();
    let second = name.split('-').next().unwrap();
    std::fs::rename(newest, dir.join(format!("{second}-00000.suit-report"))).unwrap();
}

#[test]
fn deployment_installed_confirmed_and_reported_with_the_suit_report() {
    let work = tempfile::tempdir().unwrap();
    let mock = offering(Arc::new(Mutex::new(envelope(work.path(), 2, CLASS))));
    let dev = Device::new(&mock.url(), "");

    let daemon = dev.daemon();
    let committed = mock.wait_for(Duration::from_secs(30), |m| {
        m.feedbacks(FEEDBACK)
            .iter()
            .any(|f| f["status"]["result"]["progress"]["cnt"] == 2)
            && !config_data(m).is_empty()
    });
    assert!(
        committed,
        "no commit feedback: {:?}\n{}",
        mock.requests(),
        dev.log()
    );
    // configData: the device's identity, with the token.
    let config = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path == format!("{BASE}/configData"))
        .expect("configData sent");
    assert_eq!(
        config.authorization.as_deref(),
        Some("TargetToken secret-token")
    );
    let data = &config.json()["data"];
    assert_eq!(data["hw_boardname"], "qemu-virt");
    assert_eq!(data["hw_revision"], "1");
    assert_eq!(data["sw_version"], "0");
    assert!(data["suit_class_id"].as_str().unwrap().len() == 36);
    // Polls during the trial wait do not close the action nor install again.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(closed(&mock).is_empty());
    assert_eq!(mock.count("GET", &format!("{BASE}/softwaremodules")), 1);
    daemon.stop(&dev);

    // Trial boot: boot-check confirms; the daemon's next poll closes the action.
    dev.boot_slot_b();
    agent_ok(&dev.config, &["boot-check"]);
    same_second_names(&dev);
    let daemon = dev.daemon();
    assert!(
        mock.wait_for(Duration::from_secs(30), |m| !closed(m).is_empty()),
        "{}",
        dev.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    daemon.stop(&dev);
    let verdicts = closed(&mock);
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0]["status"]["result"]["finished"], "success");
    let report = feedback_report(&dev, &verdicts[0]);
    assert_eq!(report["result"], "success", "{report}");
    // The server learns the new version: configData again, after the verdict.
    let versions: Vec<Value> = config_data(&mock)
        .iter()
        .map(|d| d["sw_version"].clone())
        .collect();
    assert_eq!(versions.last(), Some(&Value::from("2")), "{versions:?}");
    let requests = mock.requests();
    let verdict_at = requests
        .iter()
        .position(|r| {
            r.method == "POST" && r.path == FEEDBACK && r.json()["status"]["execution"] == "closed"
        })
        .unwrap();
    let last_config = requests
        .iter()
        .rposition(|r| r.method == "PUT" && r.path.ends_with("/configData"))
        .unwrap();
    assert!(verdict_at < last_config);
}

#[test]
fn refused_deployment_is_reported_once_with_the_reason() {
    let work = tempfile::tempdir().unwrap();
    let offered = Arc::new(Mutex::new(envelope(work.path(), 2, "another-class")));
    let mock = offering(Arc::clone(&offered));
    let dev = Device::new(&mock.url(), "");
    let daemon = dev.daemon();
    assert!(
        mock.wait_for(Duration::from_secs(30), |m| !closed(m).is_empty()),
        "{}",
        dev.log()
    );
    // The server keeps offering it (a slow server): the device neither retries nor repeats.
    std::thread::sleep(Duration::from_millis(2500));
    let verdicts = closed(&mock);
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0]["status"]["result"]["finished"], "failure");
    let reason = verdicts[0]["status"]["details"][0].as_str().unwrap();
    assert!(
        reason.contains("class") && reason.contains("[applicability]"),
        "{reason}"
    );
    assert_eq!(mock.count("GET", &format!("{BASE}/softwaremodules")), 1);
    let report = feedback_report(&dev, &verdicts[0]);
    assert_eq!(report["result"], "failure", "{report}");
    assert!(
        !dev.path("slot-b.img").exists()
            || std::fs::read(dev.path("slot-b.img")).unwrap().is_empty()
    );

    // Another deployment under the same action id (another envelope) is a new one.
    *offered.lock().unwrap() = envelope(work.path(), 2, CLASS);
    let committed = mock.wait_for(Duration::from_secs(30), |m| {
        m.feedbacks(FEEDBACK)
            .iter()
            .any(|f| f["status"]["result"]["progress"]["cnt"] == 2)
    });
    daemon.stop(&dev);
    assert!(committed, "{}", dev.log());
}

#[test]
fn cancelled_action_is_acknowledged_and_never_installed() {
    let work = tempfile::tempdir().unwrap();
    let env = envelope(work.path(), 2, CLASS);
    let port = Arc::new(Mutex::new(0u16));
    let p = Arc::clone(&port);
    let mock = MockDdi::start(Box::new(move |r: &Request| {
        let port = *p.lock().unwrap();
        let cancelled = r.path.contains("/cancelAction/8/feedback");
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", BASE) => base(&format!(
                r#""cancelAction":{{"href":"http://127.0.0.1:{port}{BASE}/cancelAction/8"}}"#
            )),
            ("GET", path) if path.ends_with("/cancelAction/8") => {
                Answer::Json(200, r#"{"id":"8","cancelAction":{"stopId":"7"}}"#.into())
            }
            ("GET", path) if path.contains("/deploymentBase/7") => deployment(port, "7", &env),
            ("GET", path) if path.ends_with("/update.suit") => Answer::Bytes(env.clone()),
            _ if cancelled => Answer::Json(200, "{}".into()),
            _ => Answer::Json(200, "{}".into()),
        }
    }));
    *port.lock().unwrap() = mock.port;
    let dev = Device::new(&mock.url(), "");
    let daemon = dev.daemon();
    let path = format!("{BASE}/cancelAction/8/feedback");
    assert!(
        mock.wait_for(Duration::from_secs(20), |m| !m.feedbacks(&path).is_empty()),
        "{}",
        dev.log()
    );
    daemon.stop(&dev);
    let ack = &mock.feedbacks(&path)[0];
    assert_eq!(ack["status"]["execution"], "closed");
    assert_eq!(ack["status"]["result"]["finished"], "success");
    assert_eq!(mock.count("GET", &format!("{BASE}/softwaremodules")), 0);
}

/// The daemon under a server that fails every poll in some way: it stays up, logs the
/// error, and polls at most a handful of times in 2.5 s (backoff from 100 ms, doubling).
fn survives_with_backoff(answer: fn() -> Answer, http: &str, expect_in_log: &str) {
    let mock = MockDdi::start(Box::new(move |_: &Request| answer()));
    let dev = Device::new(&mock.url(), http);
    let daemon = dev.daemon();
    std::thread::sleep(Duration::from_millis(2500));
    daemon.stop(&dev);
    let polls = mock.count("GET", BASE);
    assert!(
        (2..=6).contains(&polls),
        "{polls} polls in 2.5 s\n{}",
        dev.log()
    );
    assert!(dev.log().contains(expect_in_log), "{}", dev.log());
}

#[test]
fn server_errors_back_off() {
    survives_with_backoff(|| Answer::Json(503, "{}".into()), "", "HTTP 503");
}

#[test]
fn bad_json_backs_off() {
    survives_with_backoff(
        || Answer::Json(200, "{\"_links\": [1, ".into()),
        "",
        "unexpected reply",
    );
}

#[test]
fn a_hung_server_times_out_and_backs_off() {
    survives_with_backoff(
        || Answer::Hang,
        "[http]\nresponse-timeout = \"200ms\"\nread-timeout = \"200ms\"\n",
        "imeout",
    );
}

#[test]
fn payload_artifacts_come_from_the_server_with_the_token() {
    let work = tempfile::tempdir().unwrap();
    // The manifest names a host that does not resolve; the deployment carries the file.
    let env = envelope_with_uri(work.path(), 2, "http://cdn.invalid/firmware/fw.img");
    let image = std::fs::read(work.path().join("fw.img")).unwrap();
    let port = Arc::new(Mutex::new(0u16));
    let p = Arc::clone(&port);
    let mock = MockDdi::start(Box::new(move |r: &Request| {
        let port = *p.lock().unwrap();
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", BASE) => base(&format!(
                r#""deploymentBase":{{"href":"http://127.0.0.1:{port}{BASE}/deploymentBase/9"}}"#
            )),
            ("GET", path) if path.ends_with("/deploymentBase/9") => {
                let link = |name: &str| {
                    format!(
                        r#"{{"download-http":{{"href":"http://127.0.0.1:{port}{BASE}/softwaremodules/1/artifacts/{name}"}}}}"#
                    )
                };
                Answer::Json(
                    200,
                    format!(
                        r#"{{"id":"9","deployment":{{"chunks":[{{"artifacts":[{{"filename":"update.suit","size":{},"_links":{}}},{{"filename":"fw.img","size":{},"_links":{}}}]}}]}}}}"#,
                        env.len(),
                        link("update.suit"),
                        image.len(),
                        link("fw.img")
                    ),
                )
            }
            ("GET", path) if path.ends_with("/update.suit") => Answer::Bytes(env.clone()),
            ("GET", path) if path.ends_with("/fw.img") => Answer::Bytes(image.clone()),
            _ => Answer::Json(200, "{}".into()),
        }
    }));
    *port.lock().unwrap() = mock.port;
    let dev = Device::new(&mock.url(), "");
    let daemon = dev.daemon();
    let feedback = "/DEFAULT/controller/v1/dev-1/deploymentBase/9/feedback";
    let committed = mock.wait_for(Duration::from_secs(30), |m| {
        m.feedbacks(feedback)
            .iter()
            .any(|f| f["status"]["result"]["progress"]["cnt"] == 2)
    });
    daemon.stop(&dev);
    assert!(committed, "{:?}\n{}", mock.feedbacks(feedback), dev.log());
    let payload = mock
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/fw.img"))
        .expect("the payload came from the server");
    assert_eq!(
        payload.authorization.as_deref(),
        Some("TargetToken secret-token")
    );
}

#[test]
fn two_tokens_are_a_configuration_error_not_a_restart_loop() {
    // Exit 2: suit-agent.service's RestartPreventExitStatus=2 keeps systemd from restarting it.
    let dev = Device::new("http://127.0.0.1:9", "");
    let config = std::fs::read_to_string(&dev.config).unwrap();
    std::fs::write(&dev.config, format!("{config}gateway-token = \"other\"\n")).unwrap();
    let out = agent_config::run_agent(&dev.config, &["daemon"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}
