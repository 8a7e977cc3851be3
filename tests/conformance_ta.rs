//! Conformance through the TA core: every envelope of `../shared/suit-vectors/index.json` (the
//! public vectors, the encryption draft's manifests among them) runs through the TA core in
//! the host simulator — LOAD_MANIFEST, every planned payload through PAYLOAD_UPDATE/FINAL,
//! COMMIT — and through `suit-tool process`'s simulated device (the processor over the whole
//! update procedure), on the same device: the vector's trust anchor, the identity its shared
//! sequence asks for, images of the sizes it declares (zeros: the draft examples' digests are
//! dummies), the corpus' fleet KEK. The verdicts must agree (both accept, or both reject in
//! the same category) except for the cases of [`STRICTER`], each with the reason the TA is
//! stricter; the table is checked both ways, so it cannot go stale.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use suit_host::tee::simulator::{SimulatedTa, SimulatorConfig};
use suit_host::tee::{Tee, TeeError};
use suit_host::tool::crypt::{load_kek, load_recipient_key, seal_kek, RecipientPublic};
use suit_host::tool::SimulatedDevice;
use suit_shared::abi::{PayloadSource, Provisioning, SealedKek};
use suit_shared::auth::TrustAnchor;
use suit_shared::command::{Command, CommandSequence, IndexSelection};
use suit_shared::encryption::RecipientKey;
use suit_shared::envelope::Envelope;
use suit_shared::error::Uuid;
use suit_shared::manifest::{Manifest, Severable};
use suit_shared::params::{Parameter, VendorId};
use suit_shared::processor::{DeviceIdentity, Processor, Section};
use suit_shared::{Category, Error};
use suit_tests::vectors::{self, anchors, expected_verifier};

/// A verdict: accepted, or rejected in a category.
type Verdict = Result<(), Category>;

/// Where the TA is stricter than `suit-tool process`, per vector: (file, the tool's verdict,
/// the TA's verdict, why).
const STRICTER: &[(&str, Verdict, Verdict, &str)] = &[
    (
        "manifest-draft37/example0.signed.suit",
        Err(Category::Digest),
        POLICY,
        NOTHING_TO_INSTALL,
    ),
    (
        "manifest-legacy-install17/example0.signed.suit",
        Err(Category::Digest),
        POLICY,
        NOTHING_TO_INSTALL,
    ),
    (
        "libcsuit/suit_manifest_exp0.suit",
        Err(Category::Digest),
        POLICY,
        NOTHING_TO_INSTALL,
    ),
    (
        "nordic-suit-generator/test_cmd_create_SIGNED_OUTPUT_ENVELOPE.suit",
        Err(Category::Digest),
        POLICY,
        NOTHING_TO_INSTALL,
    ),
    (
        "nordic-suit-generator/test_cmd_parse_SIGNED_INPUT_ENVELOPE.suit",
        Err(Category::Digest),
        POLICY,
        NOTHING_TO_INSTALL,
    ),
    (
        "nordic-suit-generator/test_suit_envelope_TEST_DATA_ENVELOPE_5_SIGNED.suit",
        Err(Category::Digest),
        POLICY,
        NOTHING_TO_INSTALL,
    ),
    (
        "libcsuit/suit_manifest_expU1.suit",
        Ok(()),
        POLICY,
        WAIT_ONLY,
    ),
    (
        "manifest-draft37/example5.signed.suit",
        Err(Category::Digest),
        POLICY,
        IDENTITY_OF_ONE_COMPONENT,
    ),
    (
        "libcsuit/suit_manifest_exp5.suit",
        Err(Category::Digest),
        POLICY,
        IDENTITY_OF_ONE_COMPONENT,
    ),
    (
        "trust-domains/example0_dependent.suit",
        Ok(()),
        POLICY,
        NO_IDENTITY_CHECK,
    ),
    (
        "libcsuit/suit_manifest_expS0.suit",
        Ok(()),
        POLICY,
        NO_IDENTITY_CHECK,
    ),
    (
        "libcsuit/suit_manifest_expU3.suit",
        Err(Category::Digest),
        POLICY,
        NO_IDENTITY_CHECK,
    ),
    (
        "encryption/suit-manifest-aes-kw.suit",
        Ok(()),
        POLICY,
        NO_PLAINTEXT_DIGEST,
    ),
    (
        "encryption/suit-manifest-aes-kw-slot.suit",
        Ok(()),
        POLICY,
        NO_PLAINTEXT_DIGEST,
    ),
    (
        "libcsuit/suit_manifest_expAF.suit",
        Ok(()),
        POLICY,
        NO_PLAINTEXT_DIGEST,
    ),
    (
        "libcsuit/suit_manifest_expAFS.suit",
        Ok(()),
        POLICY,
        NO_PLAINTEXT_DIGEST,
    ),
    (
        "encryption/suit-manifest-aes-kw-content.suit",
        Ok(()),
        POLICY,
        NO_PLAINTEXT_DIGEST_CONTENT,
    ),
    (
        "encryption/suit-manifest-es-ecdh-content.suit",
        Ok(()),
        POLICY,
        NO_PLAINTEXT_DIGEST_CONTENT,
    ),
    (
        "libcsuit/suit_manifest_expAW.suit",
        Ok(()),
        POLICY,
        NO_PLAINTEXT_DIGEST_CONTENT,
    ),
    (
        "libcsuit/suit_manifest_expEW.suit",
        Ok(()),
        POLICY,
        NO_PLAINTEXT_DIGEST_CONTENT,
    ),
];

const POLICY: Verdict = Err(Category::Policy);

/// A secure-boot manifest (validate/invoke only). The TA approves updates: it runs
/// payload-fetch and install and refuses a manifest that installs nothing; validate's
/// image-match is the boot stage's (BOOT_VERIFY). The tool runs validate on its simulated
/// images and reaches the dummy digest.
const NOTHING_TO_INSTALL: &str =
    "installs nothing: the TA approves updates, validate is the boot stage's";

/// Only directive-wait, nothing installed: the TA observes none of the awaited events
/// (authorisation, battery, time of day are the normal world's), the tool's simulated device
/// counts every event as present.
const WAIT_ONLY: &str = "waits for events the TA cannot observe and installs nothing";

/// vendor-id and class-id are checked for component 0 only. They are per-component parameters
/// (§8.4.8.3): the TA's install policy wants both checked for every component it installs and
/// refuses at LOAD_MANIFEST, before any payload is fetched; the tool goes on to the dummy
/// digest.
const IDENTITY_OF_ONE_COMPONENT: &str =
    "installs a component whose vendor and class are never checked";

/// Neither vendor-id nor class-id is checked: the manifest would install on every device. The
/// TA refuses it (applicability is the TA's decision, DESIGN §3); the tool runs the procedure as
/// written.
const NO_IDENTITY_CHECK: &str = "checks no vendor or class: it applies to every device";

/// An encrypted, fetched payload with no plaintext image-digest/size. The TA approves no
/// payload on an AEAD tag alone: whoever holds the fleet KEK can unwrap the CEK and encrypt
/// another payload under it that passes the tag. The tool decrypts and accepts.
const NO_PLAINTEXT_DIGEST: &str =
    "no plaintext digest: an AEAD tag under a fleet KEK proves nothing about the vendor";

/// Encrypted content carried in the (signed) manifest, with no plaintext image-digest/size:
/// the ciphertext is authentic, but the TA's approval token and verified boot bind the image
/// digest the manifest declares (the dm-verity salt is that digest), so a component without
/// one cannot be approved. The tool decrypts and accepts.
const NO_PLAINTEXT_DIGEST_CONTENT: &str =
    "no plaintext digest to bind into the approval token and verified boot";

/// The real payloads of vectors that fetch one (the rest get zeros): (vector, component,
/// payload file).
const PAYLOADS: &[(&str, usize, &str)] = &[
    ("encryption/suit-manifest-aes-kw.suit", 1, GCM_PAYLOAD),
    ("encryption/suit-manifest-aes-kw-slot.suit", 1, GCM_PAYLOAD),
    ("libcsuit/suit_manifest_expAF.suit", 1, GCM_PAYLOAD),
    ("libcsuit/suit_manifest_expAFS.suit", 1, GCM_PAYLOAD),
];

const GCM_PAYLOAD: &str = "encryption/encrypted-payload-aes-kw-aes-gcm.bin";

/// The fleet KEK of the encryption vectors (A128KW, 'a' × 16).
fn kek_path() -> PathBuf {
    vectors::path("keys/a128kw-kek-16xa.bin")
}

/// What a manifest asks of its device: vendor and class (first set in the shared sequence),
/// per component the image size it declares first (first try-each branch), and which component
/// each URI is fetched into.
#[derive(Default)]
struct Wanted {
    vendor: Option<Uuid>,
    class: Option<Uuid>,
    sizes: BTreeMap<usize, u64>,
    uris: BTreeMap<String, usize>,
}

impl Wanted {
    fn of(m: &Manifest<'_>) -> Self {
        let mut w = Wanted::default();
        let n = m.components.len();
        fn severable<'s, 'a>(
            s: &'s Severable<'a, CommandSequence<'a>>,
        ) -> Option<&'s CommandSequence<'a>> {
            match s {
                Severable::Present { value, .. } => Some(value),
                _ => None,
            }
        }
        let sequences = [
            m.shared_sequence.as_ref(),
            severable(&m.payload_fetch),
            severable(&m.install),
            m.validate.as_ref(),
        ];
        for seq in sequences.into_iter().flatten() {
            w.walk(seq, &mut vec![0], n);
        }
        w
    }

    fn walk(&mut self, seq: &CommandSequence<'_>, selection: &mut Vec<usize>, n: usize) {
        for command in &seq.commands {
            match command {
                Command::SetComponentIndex(IndexSelection::One(i)) => *selection = vec![*i],
                Command::SetComponentIndex(IndexSelection::All) => *selection = (0..n).collect(),
                Command::SetComponentIndex(IndexSelection::List(l)) => *selection = l.clone(),
                Command::OverrideParameters(params) | Command::SetParameters(params) => {
                    for &c in selection.iter() {
                        self.learn(c, params);
                    }
                }
                Command::OverrideMultiple(entries) => {
                    for (c, params) in entries {
                        self.learn(*c, params);
                    }
                }
                Command::TryEach { branches, .. } => {
                    if let Some(first) = branches.first() {
                        self.walk(first, &mut selection.clone(), n);
                    }
                }
                Command::RunSequence(inner) => self.walk(inner, &mut selection.clone(), n),
                _ => {}
            }
        }
    }

    fn learn(&mut self, c: usize, params: &[Parameter<'_>]) {
        for p in params {
            match p {
                Parameter::VendorId(VendorId::Uuid(u)) => {
                    self.vendor.get_or_insert(*u);
                }
                Parameter::ClassId(u) => {
                    self.class.get_or_insert(*u);
                }
                Parameter::ImageSize(s) => {
                    self.sizes.entry(c).or_insert(*s);
                }
                Parameter::Uri(uri) => {
                    self.uris.entry(uri.to_string()).or_insert(c);
                }
                _ => {}
            }
        }
    }
}

/// One vector on one device.
struct Case {
    file: String,
    bytes: Vec<u8>,
    anchors: Vec<TrustAnchor>,
    identity: DeviceIdentity,
    /// Per component, its current content (also what a fetch for it retrieves).
    images: BTreeMap<usize, Vec<u8>>,
    /// The component each URI is fetched into.
    uris: BTreeMap<String, usize>,
    dir: PathBuf,
}

impl Case {
    fn new(e: &Value, all: &BTreeMap<&'static str, TrustAnchor>, dir: PathBuf) -> Self {
        let file = e["file"].as_str().unwrap().to_string();
        let bytes = vectors::read(&file);
        let anchors: Vec<TrustAnchor> = match expected_verifier(e) {
            Some(key) => vec![all[key.as_str()].clone()],
            None => all.values().cloned().collect(),
        };
        let wanted = Manifest::authenticate(&bytes, &anchors)
            .map(|a| Wanted::of(&a.manifest))
            .unwrap_or_default();
        let identity = DeviceIdentity {
            vendor_id: wanted.vendor.unwrap_or(Uuid([0; 16])),
            class_id: wanted.class.unwrap_or(Uuid([0; 16])),
            device_id: None,
        };
        // A component fetched into without a size of its own (e.g. a cache that is copied on)
        // gets the first size the manifest declares.
        let any_size = wanted.sizes.values().next().copied().unwrap_or(0);
        let mut sizes = wanted.sizes.clone();
        for &c in wanted.uris.values() {
            sizes.entry(c).or_insert(any_size);
        }
        let mut images: BTreeMap<usize, Vec<u8>> = sizes
            .iter()
            .filter(|(_, s)| **s <= 1 << 20)
            .map(|(c, s)| (*c, vec![0u8; *s as usize]))
            .collect();
        for (_, c, payload) in PAYLOADS.iter().filter(|(f, ..)| *f == file) {
            images.insert(*c, vectors::read(payload));
        }
        std::fs::create_dir_all(&dir).unwrap();
        Case {
            file,
            bytes,
            anchors,
            identity,
            images,
            uris: wanted.uris,
            dir,
        }
    }

    /// `suit-tool process`: the processor over the update procedure on the simulated device.
    fn tool(&self) -> Result<(), Error> {
        let authentic = Manifest::authenticate(&self.bytes, &self.anchors)?;
        let images = self
            .images
            .iter()
            .map(|(c, bytes)| {
                let path = self.dir.join(format!("image-{c}"));
                std::fs::write(&path, bytes).unwrap();
                (*c, path)
            })
            .collect();
        let mut device = SimulatedDevice::new(self.identity.clone(), 0, images)
            .with_decryption_keys(vec![
                RecipientKey::Kek {
                    kid: None,
                    key: load_kek(&kek_path()).unwrap(),
                },
                load_recipient_key(&vectors::path("keys/enc-ecdh-es-recipient-p256.priv.pem"))
                    .unwrap(),
            ]);
        Processor::new(&authentic, &mut device).run(&Section::UPDATE)
    }

    /// The TA core: LOAD_MANIFEST for slot 0, every plan item's bytes approved, COMMIT.
    fn ta(&self) -> Result<(), TeeError> {
        let mut config = SimulatorConfig::new(self.dir.join("ta"), self.anchors.clone());
        config.vendor_id = self.identity.vendor_id;
        config.class_id = self.identity.class_id;
        let ta = SimulatedTa::new(config)?;
        let mut s = ta.open_session();
        // The corpus' KEK, sealed to this TA's key-agreement key as PROVISION takes it.
        let device = p384::PublicKey::from_sec1_bytes(&s.get_info()?.device_public_key)
            .expect("the TA's key-agreement key is a P-384 point");
        let sealed = seal_kek(
            &RecipientPublic::P384(device),
            &load_kek(&kek_path()).unwrap(),
        )
        .expect("sealing the corpus KEK");
        s.provision(&Provisioning {
            kek: Some(SealedKek {
                sealed,
                kid: b"kid-1".to_vec(),
            }),
            vendor_id: None,
            class_id: None,
            device_id: None,
        })?;
        let plan = s.load_manifest(&self.bytes, 0)?;
        let envelope = Envelope::decode(&self.bytes).unwrap();
        let mut tokens = Vec::new();
        for item in &plan.items {
            let bytes: Vec<u8> = match &item.source {
                PayloadSource::Integrated(uri) => envelope.integrated(uri).unwrap().to_vec(),
                PayloadSource::Content(bytes) => bytes.clone(),
                // What the fetch retrieves: the image of the component it fetches into.
                PayloadSource::Uri(uri) => self
                    .uris
                    .get(uri)
                    .and_then(|c| self.images.get(c))
                    .cloned()
                    .unwrap_or_default(),
            };
            tokens.push(s.approve(item.index, &mut &bytes[..])?.token);
        }
        s.commit(&tokens)?;
        Ok(())
    }
}

fn category(e: &TeeError) -> Category {
    match e {
        TeeError::Rejected { rejection, .. } => rejection.category,
        other => panic!("not a rejection: {other}"),
    }
}

fn show(v: &Verdict) -> String {
    match v {
        Ok(()) => String::from("accept"),
        Err(c) => format!("reject ({c:?})"),
    }
}

/// One vector's verdicts where they differ: (file, the tool's, the TA's, both messages).
type Difference = (String, Verdict, Verdict, String);

/// Every envelope vector through the tool and the TA on the device `Case::new` makes, changed
/// by `device`; the differences and the verdicts both gave.
fn compare(device: fn(&mut DeviceIdentity)) -> (Vec<Difference>, Vec<Verdict>) {
    let all = anchors();
    let scratch = tempfile::tempdir().unwrap();
    let mut differences = Vec::new();
    let mut agreed = Vec::new();
    for (n, e) in vectors::index()
        .iter()
        .filter(|e| e["kind"] == "envelope")
        .enumerate()
    {
        let mut case = Case::new(e, &all, scratch.path().join(n.to_string()));
        device(&mut case.identity);
        let tool_result = case.tool();
        let tool = tool_result.as_ref().map_err(Error::category).copied();
        let ta = case.ta();
        let ta_verdict = ta.as_ref().map(|_| ()).map_err(category);
        if tool == ta_verdict {
            agreed.push(tool);
            continue;
        }
        let message = format!(
            "{}; {}",
            tool_result.err().map(|e| e.to_string()).unwrap_or_default(),
            ta.err().map(|e| e.to_string()).unwrap_or_default()
        );
        differences.push((case.file, tool, ta_verdict, message));
    }
    (differences, agreed)
}

/// The differences [`STRICTER`] does not explain.
fn unexplained(differences: &[Difference]) -> Vec<String> {
    differences
        .iter()
        .filter(|(file, tool, ta, _)| {
            !STRICTER
                .iter()
                .any(|(f, t, a, _)| f == file && t == tool && a == ta)
        })
        .map(|(file, tool, ta, message)| {
            format!(
                "{file}: suit-tool process {}, the TA {}: {message}",
                show(tool),
                show(ta)
            )
        })
        .collect()
}

#[test]
fn every_vector_gets_the_tools_verdict_through_the_ta_or_a_documented_stricter_one() {
    let (differences, agreed) = compare(|_| {});
    let unexplained = unexplained(&differences);
    assert!(
        unexplained.is_empty(),
        "verdicts differ without a documented reason:\n{}",
        unexplained.join("\n")
    );
    for (file, ..) in STRICTER {
        assert!(
            differences.iter().any(|(f, ..)| f == file),
            "{file} is listed as a difference but the verdicts agree"
        );
    }
    let count = |v: Verdict| agreed.iter().filter(|a| **a == v).count();
    assert!(agreed.len() >= 60, "only {} vectors agree", agreed.len());
    // Both accept the vector with a real (integrated) payload, both reach the draft examples'
    // dummy digests, both refuse what does not authenticate.
    assert!(count(Ok(())) >= 1);
    assert!(count(Err(Category::Digest)) >= 8);
    assert!(count(Err(Category::Authentication)) >= 30);
}

#[test]
fn a_device_of_another_class_is_refused_alike() {
    let (differences, agreed) = compare(|identity| identity.class_id.0[15] ^= 1);
    // Those that check the class now fail it in both; the rest differ as documented.
    let unexplained = unexplained(&differences);
    assert!(
        unexplained.is_empty(),
        "verdicts differ without a documented reason:\n{}",
        unexplained.join("\n")
    );
    let applicability = agreed
        .iter()
        .filter(|a| **a == Err(Category::Applicability))
        .count();
    assert!(
        applicability >= 15,
        "only {applicability} refused as not applicable"
    );
}
