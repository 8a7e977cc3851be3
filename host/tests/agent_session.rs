//! The agent's TA session and journal (issue 12): GET_INFO is asked once per session for the
//! chunk size, not before every stream; the journal keeps no approval tokens (they are bound to
//! the TA session that issued them, so nothing could use them) and still reads the journals of
//! earlier agents that kept them. The real agent library on the simulator TA, an update
//! fetched from `file://` URIs, slots in files.

#[allow(dead_code)] // Scratch: the device makes its own directory
#[path = "support/cli.rs"]
mod cli;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cli::{ok, tool};
use p384::pkcs8::{EncodePublicKey, LineEnding};
use suit_host::agent::config::Config;
use suit_host::agent::fetch::progress::{NoProgress, Progress};
use suit_host::agent::journal::{ComponentState, JournalStore, Step};
use suit_host::agent::update::{Agent, BootCheck};
use suit_host::agent::Slot;
use suit_host::tee::simulator::{SimulatorConfig, SimulatorSession};
use suit_host::tee::{Backend, RawOutput, Tee, TeeError};
use suit_shared::abi::{CommandId, Request};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Deterministic bytes, distinct per seed.
fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// What the counting session saw.
#[derive(Default)]
struct Counts {
    get_info: AtomicUsize,
    /// Streams through the TA: approvals (PAYLOAD_FINAL ends each) and decryptions for the
    /// install (counted at their first chunk).
    streams: AtomicUsize,
}

/// The simulator TA, counting the commands the agent sends.
struct Counting {
    inner: SimulatorSession,
    counts: Arc<Counts>,
}

impl Tee for Counting {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    fn invoke(
        &mut self,
        command: CommandId,
        request: &[u8],
        data_in: Option<&[u8]>,
        response_capacity: usize,
        data_out_capacity: Option<usize>,
    ) -> Result<RawOutput, TeeError> {
        let counter = match command {
            CommandId::GetInfo => Some(&self.counts.get_info),
            CommandId::PayloadFinal => Some(&self.counts.streams),
            CommandId::DecryptForInstall => {
                let first = matches!(
                    Request::decode(command, request),
                    Ok(Request::DecryptForInstall { offset: 0, .. })
                );
                first.then_some(&self.counts.streams)
            }
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.invoke(
            command,
            request,
            data_in,
            response_capacity,
            data_out_capacity,
        )
    }
}

/// A simulated device with a `rootfs` component in slot files, booted from A, and a signed
/// update of it whose payload, encrypted to the device key, is a `file://` URI.
struct Device {
    dir: tempfile::TempDir,
    config: PathBuf,
    envelope: PathBuf,
}

impl Device {
    fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "state-dir = \"{d}/state\"\nstaging-dir = \"{d}/staging\"\n\
                 booted-slot-file = \"{d}/booted-slot\"\nchunk-size = 65536\n\
                 [boot]\nbackend = \"file\"\npath = \"{d}/bootstate\"\n\
                 [[component]]\nid = [\"rootfs\"]\n\
                 slot-a = {{ path = \"{d}/rootfs-a.img\", component-slot = 0 }}\n\
                 slot-b = {{ path = \"{d}/rootfs-b.img\", component-slot = 1 }}\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("booted-slot"), "A\n").unwrap();
        let mut dev = Device {
            dir,
            config,
            envelope: PathBuf::new(),
        };
        let dir = &dev.dir;
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        std::fs::write(work.join("rootfs.img"), image(200 * 1024, 1)).unwrap();
        let info = dev.agent().0.info().unwrap();
        let device_key = p384::PublicKey::from_sec1_bytes(&info.device_public_key).unwrap();
        std::fs::write(
            work.join("device.pub.pem"),
            device_key.to_public_key_pem(LineEnding::LF).unwrap(),
        )
        .unwrap();
        let w = work.display();
        let spec = work.join("update.toml");
        std::fs::write(
            &spec,
            format!(
                "sequence-number = 2\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
                 [[component]]\nid = [\"rootfs\"]\nimage = \"rootfs.img\"\nuri = \"file://{w}/rootfs.img.enc\"\n\
                 [component.encryption]\nrecipient = \"device.pub.pem\"\n"
            ),
        )
        .unwrap();
        let envelope = work.join("update.suit");
        let key = repo().join("keys/dev-vendor-es384.priv.pem");
        ok(tool(&[
            OsStr::new("create"),
            OsStr::new("--spec"),
            spec.as_os_str(),
            OsStr::new("--out"),
            envelope.as_os_str(),
            OsStr::new("--key"),
            key.as_os_str(),
        ]));
        dev.envelope = envelope;
        dev
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An agent on a new session with the simulated TA, counting what it sends.
    fn agent(&self) -> (Agent, Arc<Counts>) {
        let anchor =
            suit_host::keys::load_trust_anchor(&repo().join("keys/dev-vendor-es384.pub.pem"))
                .unwrap();
        let sim = SimulatorConfig::new(self.path("state/simulated-ta"), vec![anchor]);
        let counts = Arc::new(Counts::default());
        let tee = Counting {
            inner: SimulatorSession::connect(sim).unwrap(),
            counts: Arc::clone(&counts),
        };
        let agent = Agent::new(
            Config::load(&self.config).unwrap(),
            Box::new(tee),
            Box::new(|| Box::new(NoProgress) as Box<dyn Progress>),
        )
        .unwrap();
        (agent, counts)
    }

    fn install(&self, agent: &mut Agent) {
        let installed = agent.install(self.envelope.to_str().unwrap()).unwrap();
        assert_eq!(installed.slot, Slot::B);
        assert_eq!(installed.components.len(), 1);
    }

    fn journal_text(&self) -> String {
        std::fs::read_to_string(self.path("state/journal.json")).unwrap()
    }
}

#[test]
fn get_info_is_asked_once_per_session_for_the_chunk_size_not_per_stream() {
    let dev = Device::new();
    let (mut agent, counts) = dev.agent();
    // An encrypted payload streams twice through the TA, each time in several chunks: to be
    // approved, then to be decrypted into the slot.
    dev.install(&mut agent);
    assert_eq!(counts.streams.load(Ordering::SeqCst), 2);
    // The install reads the install state once; the chunk size takes one more GET_INFO for
    // the whole session, whatever the number of streams.
    assert_eq!(
        counts.get_info.load(Ordering::SeqCst),
        1 + 1,
        "GET_INFO: one for the install state, one for the session's chunk size"
    );
}

#[test]
fn the_journal_keeps_no_approval_tokens() {
    let dev = Device::new();
    let (mut agent, _) = dev.agent();
    dev.install(&mut agent);
    let text = dev.journal_text();
    assert!(!text.contains("token"), "{text}");
    let journal = JournalStore::new(&dev.path("state")).load().unwrap();
    let update = journal.update.expect("the committed install is journaled");
    assert_eq!(update.step, Step::TrialArmed);
    assert!(update.all_components(ComponentState::is_written), "{text}");
}

#[test]
fn journals_of_earlier_agents_with_tokens_are_read_without_them() {
    let dev = Device::new();
    let (mut agent, _) = dev.agent();
    dev.install(&mut agent);
    drop(agent);
    // The journal as an earlier agent wrote it: every state carrying its token.
    let store = JournalStore::new(&dev.path("state"));
    let current = store.load().unwrap();
    let legacy = dev.journal_text().replace(
        "\"written\"",
        "{\"written\": {\"token\": \"d28443a10126a0\"}}",
    );
    assert_ne!(legacy, dev.journal_text());
    std::fs::write(dev.path("state/journal.json"), &legacy).unwrap();
    assert_eq!(store.load().unwrap(), current);
    // ... and the trial boot's boot-check of a newer agent confirms the install it records.
    std::fs::write(dev.path("booted-slot"), "B\n").unwrap();
    let (mut agent, _) = dev.agent();
    assert!(matches!(
        agent.boot_check().unwrap(),
        BootCheck::Confirmed { slot: Slot::B, .. }
    ));
}

/// Journals that are not what an agent wrote stay errors (never panics, never silently
/// empty), the legacy token form included.
#[test]
fn malformed_component_states_are_journal_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path());
    let journal = |state: &str| {
        format!(
            "{{\"format\": \"suit-agent-journal\", \"version\": 1, \"journal\": {{\"update\": {{\
             \"manifest-digest\": \"ab\", \"sequence-number\": 2, \"source\": \"x\", \
             \"target-slot\": \"B\", \"step\": \"approved\", \"components\": [{{\"index\": 0, \
             \"id\": [\"rootfs\"], \"size\": 1, \"state\": {state}}}], \"started-at\": 0, \
             \"updated-at\": 0}}, \"last-outcome\": null}}}}"
        )
    };
    std::fs::write(store.path(), journal("{\"approved\": {\"token\": \"00\"}}")).unwrap();
    let update = store.load().unwrap().update.unwrap();
    let state = &update.components[0].state;
    assert!(state.is_approved() && !state.is_written(), "{state:?}");
    for bad in [
        "{\"staged\": {\"token\": \"00\"}}",
        "{\"written\": {\"token\": \"00\", \"size\": 1}}",
        "{\"written\": {}}",
        "{\"written\": {\"token\": \"00\"}, \"approved\": {\"token\": \"00\"}}",
        "{}",
        "\"finished\"",
        "7",
    ] {
        std::fs::write(store.path(), journal(bad)).unwrap();
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{bad}: {err}");
    }
}
