//! Driving the real TA core through the simulator backend from a test: the development keys,
//! a simulated device on a scratch state directory, signing, streaming payloads, rejections.

use std::path::{Path, PathBuf};

use suit_host::tee::simulator::{SimulatedTa, SimulatorConfig, SimulatorSession};
use suit_host::tee::{Tee, TeeError};
use suit_host::tool::spec::{class_uuid, vendor_uuid};
use suit_shared::abi;
use suit_shared::author::{build_envelope, encode_manifest, sign_envelope, SigningKey};
use suit_shared::command::{Command, CommandSequence};
use suit_shared::component::ComponentId;
use suit_shared::digest::DigestAlg;
use suit_shared::error::Uuid;
use suit_shared::manifest::{Manifest, Severable};
use suit_shared::Category;

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The development vendor signing key (ES384).
pub fn vendor_key() -> SigningKey {
    suit_host::keys::load_signing_key(&repo().join("keys/dev-vendor-es384.priv.pem")).unwrap()
}

/// The test vendor's id.
pub fn vendor() -> Uuid {
    vendor_uuid("example.com")
}

/// The test device class's id.
pub fn class() -> Uuid {
    class_uuid(vendor(), "qemu-armv8a")
}

/// `n` bytes of a test image, different for each `seed`.
pub fn image(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// A manifest of `components` with a shared and an install sequence and nothing else.
pub fn manifest<'a>(
    seq: u64,
    components: Vec<ComponentId>,
    shared: Vec<Command<'a>>,
    install: Vec<Command<'a>>,
) -> Manifest<'a> {
    Manifest {
        sequence_number: seq,
        components,
        shared_sequence: Some(CommandSequence { commands: shared }),
        reference_uri: None,
        manifest_component_id: None,
        set_version: None,
        validate: None,
        load: None,
        invoke: None,
        uninstall: None,
        payload_fetch: Severable::Absent,
        install: Severable::Present {
            value: CommandSequence { commands: install },
            severed: false,
        },
        candidate_verification: Severable::Absent,
        text: Severable::Absent,
        coswid: Severable::Absent,
    }
}

/// Encodes `manifest`, wraps it in an envelope and signs it with `key`.
pub fn sign(manifest: &Manifest<'_>, key: &SigningKey) -> Vec<u8> {
    let encoded = encode_manifest(manifest, DigestAlg::Sha256);
    let unsigned = build_envelope(&encoded, &[], DigestAlg::Sha256);
    sign_envelope(&unsigned, key, key.default_alg(), None).unwrap()
}

/// A fresh simulated TA with its own state directory, trusting the development vendor key.
pub struct Device {
    _dir: tempfile::TempDir,
    config: SimulatorConfig,
    /// The TA instance (sessions as a given client: `open_session_as`).
    pub ta: SimulatedTa,
}

impl Device {
    /// 4 KiB chunks and 64 KiB envelopes at most, then `change`.
    pub fn with(change: impl FnOnce(&mut SimulatorConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let anchor =
            suit_host::keys::load_trust_anchor(&repo().join("keys/dev-vendor-es384.pub.pem"))
                .unwrap();
        let mut config = SimulatorConfig::new(dir.path().join("state"), vec![anchor]);
        config.max_chunk = 4096;
        config.max_envelope = 64 * 1024;
        change(&mut config);
        let ta = SimulatedTa::new(config.clone()).unwrap();
        Device {
            _dir: dir,
            config,
            ta,
        }
    }

    /// 4 KiB chunks and 64 KiB envelopes at most.
    pub fn new() -> Self {
        Device::with(|_| {})
    }

    /// A new session.
    pub fn session(&self) -> SimulatorSession {
        self.ta.open_session()
    }

    /// A new TA instance on the same state (a TA restart / reboot).
    pub fn restart(&mut self) {
        self.ta = SimulatedTa::new(self.config.clone()).unwrap();
    }

    /// The TA's persistent state file.
    pub fn state_file(&self) -> PathBuf {
        self.config.state_dir.join("suit-ta-state")
    }
}

/// The category and message of a rejection; panics on any other error.
pub fn rejected(e: TeeError) -> (Category, String) {
    match e {
        TeeError::Rejected { rejection, .. } => (rejection.category, rejection.message),
        other => panic!("expected a rejection, got {other}"),
    }
}

/// Asserts that `r` is a rejection of `category` whose message contains `text`.
pub fn expect_rejection<T: std::fmt::Debug>(
    r: Result<T, TeeError>,
    category: Category,
    text: &str,
) {
    let (c, m) = rejected(r.unwrap_err());
    assert_eq!(c, category, "{m}");
    assert!(m.contains(text), "{m:?} does not contain {text:?}");
}

/// Streams `bytes` in chunks of `chunk` through PAYLOAD_UPDATE.
pub fn feed(tee: &mut dyn Tee, index: u32, bytes: &[u8], chunk: usize) {
    for (i, c) in bytes.chunks(chunk).enumerate() {
        tee.payload_update(index, (i * chunk) as u64, c).unwrap();
    }
}

/// Streams `bytes` in chunks of `chunk` through PAYLOAD_UPDATE, then PAYLOAD_FINAL.
pub fn approve(tee: &mut dyn Tee, index: u32, bytes: &[u8], chunk: usize) -> abi::Approval {
    feed(tee, index, bytes, chunk);
    tee.payload_final(index).unwrap()
}
