//! The agent's journal: where an update stands, kept crash-safe in the state directory.
//!
//! Every step of an update (DESIGN.md §5) is idempotent; the journal records which steps are
//! done, so that after a power cut the agent resumes or cleans up instead of guessing. It is
//! small JSON (`STATE_DIR/journal.json`), replaced atomically on every change (temporary
//! file, fsync, rename, fsync of the directory), and versioned:
//!
//! ```json
//! {"format": "suit-agent-journal", "version": 1, "journal": {"update": {...}, "last-outcome": null}}
//! ```
//!
//! A journal that cannot be read (truncated, edited, another version) is an error, never a
//! panic and never silently an empty journal; the flows decide how to clean up
//! ([`JournalStore::discard`]). The journal holds no secret.
//!
//! It keeps no approval tokens: a token is good only in the TA session that approved it
//! (COMMIT takes the tokens of that session's approvals, bound to its nonce), and a resumed
//! install runs in a new session, so it streams the staged payloads through the TA again.
//! What the TA signed for a verifier is the SUIT report the agent keeps and posts.
//! Journals of earlier agents, whose states carry a token, are read; the token is ignored.
//!
//! [`JournalStore::lock`] keeps a second agent process (a CLI call while the daemon runs)
//! from working on the same state.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::atomic;
use super::Slot;
use suit_shared::component::ComponentId;

/// The journal format version this agent writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The value of the file's `format` field.
const FORMAT_NAME: &str = "suit-agent-journal";

/// Name of the journal in the state directory.
pub const JOURNAL_FILE: &str = "journal.json";

/// Name of the lock file in the state directory.
pub const LOCK_FILE: &str = "agent.lock";

/// A journal larger than this is not one the agent wrote.
const MAX_JOURNAL_BYTES: u64 = 1 << 20;

/// The journal's content.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Journal {
    /// The update in progress, if any.
    pub update: Option<UpdateRecord>,
    /// How the last finished update ended.
    pub last_outcome: Option<Outcome>,
}

/// An update in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpdateRecord {
    /// Digest of the manifest, as the TA reported it; names the update.
    #[serde(with = "hex_bytes")]
    pub manifest_digest: Vec<u8>,
    /// The manifest's sequence number.
    pub sequence_number: u64,
    /// Where the envelope came from (URL or path).
    pub source: String,
    /// The slot being installed (the inactive one).
    pub target_slot: Slot,
    /// The last step completed.
    pub step: Step,
    /// The components of the install plan.
    pub components: Vec<ComponentRecord>,
    /// When the update started (seconds since the Unix epoch).
    pub started_at: u64,
    /// When the record last changed (seconds since the Unix epoch).
    pub updated_at: u64,
}

impl UpdateRecord {
    /// A record for an update whose manifest the TA just accepted.
    pub fn new(
        manifest_digest: Vec<u8>,
        sequence_number: u64,
        source: String,
        target_slot: Slot,
        components: Vec<ComponentRecord>,
    ) -> UpdateRecord {
        let now = unix_now();
        UpdateRecord {
            manifest_digest,
            sequence_number,
            source,
            target_slot,
            step: Step::Planned,
            components,
            started_at: now,
            updated_at: now,
        }
    }

    /// Records that `step` is done and stamps the time; never moves back (a resumed install
    /// passes again through steps it recorded before).
    pub fn advance(&mut self, step: Step) {
        self.step = self.step.max(step);
        self.touch();
    }

    /// Stamps the time of a change.
    pub fn touch(&mut self) {
        self.updated_at = unix_now();
    }

    /// Whether every component passes `reached`, e.g. [`ComponentState::is_approved`].
    pub fn all_components(&self, reached: fn(&ComponentState) -> bool) -> bool {
        self.components.iter().all(|c| reached(&c.state))
    }
}

/// Steps of an update, each recorded once it is complete; in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The TA accepted the manifest and returned the install plan.
    Planned,
    /// Every payload is in the staging directory.
    Staged,
    /// The TA approved every payload (each has its token).
    Approved,
    /// Every payload is written to the target slot, synced and read back.
    Written,
    /// The TA recorded the pending install (COMMIT).
    Committed,
    /// The boot control is set to try the target slot once; a reboot is due.
    TrialArmed,
}

/// One component of the install plan and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ComponentRecord {
    /// Index of the component in the manifest.
    pub index: u32,
    /// SUIT component identifier.
    pub id: ComponentId,
    /// Payload size from the plan, in bytes.
    pub size: u64,
    /// How far it got.
    pub state: ComponentState,
    /// One-pass install: bytes of the image written to the slot and synced (whole blocks);
    /// an interrupted install resumes the stream there (docs/streaming.md).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub streamed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How far one component got; each state implies the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentState {
    /// Not staged yet.
    Pending,
    /// The payload is in the staging directory.
    Staged,
    /// The TA approved the staged payload (in the session that wrote this).
    Approved,
    /// Written to the target slot, synced and read back.
    Written,
}

impl ComponentState {
    /// The names the journal writes, in order.
    const NAMES: &'static [&'static str] = &["pending", "staged", "approved", "written"];

    /// Whether the payload is staged (or further).
    pub fn is_staged(&self) -> bool {
        !matches!(self, ComponentState::Pending)
    }

    /// Whether the payload is approved (or further).
    pub fn is_approved(&self) -> bool {
        matches!(self, ComponentState::Approved | ComponentState::Written)
    }

    /// Whether the payload is written.
    pub fn is_written(&self) -> bool {
        matches!(self, ComponentState::Written)
    }

    fn from_name(name: &str) -> Option<ComponentState> {
        match name {
            "pending" => Some(ComponentState::Pending),
            "staged" => Some(ComponentState::Staged),
            "approved" => Some(ComponentState::Approved),
            "written" => Some(ComponentState::Written),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ComponentState {
    /// A state's name, or `{"approved": {"token": "…"}}` / `{"written": {"token": "…"}}` as
    /// earlier agents wrote them (the token is ignored).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StateVisitor)
    }
}

struct StateVisitor;

/// The value of a state that earlier agents wrote with its approval token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyToken {
    #[serde(rename = "token")]
    _token: IgnoredAny,
}

impl<'de> Visitor<'de> for StateVisitor {
    type Value = ComponentState;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a component state (pending, staged, approved or written)")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<ComponentState, E> {
        ComponentState::from_name(name)
            .ok_or_else(|| E::unknown_variant(name, ComponentState::NAMES))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ComponentState, A::Error> {
        const WITH_TOKEN: &[&str] = &["approved", "written"];
        let name: String = map
            .next_key()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let state = match ComponentState::from_name(&name) {
            Some(state) if state.is_approved() => state,
            _ => return Err(de::Error::unknown_variant(&name, WITH_TOKEN)),
        };
        map.next_value::<LegacyToken>()?;
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(2, &self));
        }
        Ok(state)
    }
}

/// How a finished update ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Outcome {
    /// Digest of the update's manifest.
    #[serde(with = "hex_bytes")]
    pub manifest_digest: Vec<u8>,
    /// The manifest's sequence number.
    pub sequence_number: u64,
    /// The slot it was installed to.
    pub slot: Slot,
    /// The result.
    pub result: OutcomeResult,
    /// Why, for a person (the error of a failed update).
    pub message: Option<String>,
    /// When it ended (seconds since the Unix epoch).
    pub finished_at: u64,
}

/// The ways an update ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeResult {
    /// The new slot booted, passed its checks and was confirmed.
    Confirmed,
    /// The new slot failed its trial; the device runs the old slot again.
    RolledBack,
    /// The update stopped before the trial boot (rejected, failed, or cancelled).
    Aborted,
    /// The TA no longer held the committed install while its trial slot ran (another TEE
    /// client rolled it back, or the TA's storage was restored): `boot-check` raised an alarm
    /// and fell back to the other slot.
    Vanished,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, writing or locking failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not a journal this agent can read.
    #[error("the journal {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The journal was written by an agent with another format version.
    #[error("the journal {} has format version {found}; this agent reads version {supported}", path.display())]
    UnsupportedVersion {
        /// The journal file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this agent reads.
        supported: u32,
    },
    /// Another agent process holds the state lock.
    #[error("another suit-agent is working on {} (lock {} is held)", path.parent().unwrap_or(path).display(), path.display())]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
}

#[derive(Serialize)]
struct FileOut<'a> {
    format: &'static str,
    version: u32,
    journal: &'a Journal,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    #[serde(rename = "format")]
    _format: String,
    #[serde(rename = "version")]
    _version: u32,
    journal: Journal,
}

/// The journal file in a state directory.
#[derive(Debug, Clone)]
pub struct JournalStore {
    dir: PathBuf,
    path: PathBuf,
}

/// Exclusive use of the state directory by this process, until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl JournalStore {
    /// The journal of the state directory `state_dir` (created when first saved).
    pub fn new(state_dir: &Path) -> JournalStore {
        JournalStore {
            dir: state_dir.to_path_buf(),
            path: state_dir.join(JOURNAL_FILE),
        }
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the journal; a missing file is an empty journal.
    pub fn load(&self) -> Result<Journal, JournalError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Journal::default()),
            Err(e) => return Err(self.io("open", e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_JOURNAL_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io("read", e))?;
        if bytes.len() as u64 > MAX_JOURNAL_BYTES {
            return Err(self.corrupt(format!("larger than {MAX_JOURNAL_BYTES} bytes")));
        }
        let header: Header =
            serde_json::from_slice(&bytes).map_err(|e| self.corrupt(e.to_string()))?;
        if header.format != FORMAT_NAME {
            return Err(self.corrupt(format!(
                "format {:?}, expected {FORMAT_NAME:?}",
                header.format
            )));
        }
        if header.version != FORMAT_VERSION {
            return Err(JournalError::UnsupportedVersion {
                path: self.path.clone(),
                found: header.version,
                supported: FORMAT_VERSION,
            });
        }
        let file: FileIn =
            serde_json::from_slice(&bytes).map_err(|e| self.corrupt(e.to_string()))?;
        Ok(file.journal)
    }

    /// Replaces the journal with `journal`, durably and atomically; creates the state
    /// directory if needed.
    pub fn save(&self, journal: &Journal) -> Result<(), JournalError> {
        let file = FileOut {
            format: FORMAT_NAME,
            version: FORMAT_VERSION,
            journal,
        };
        let mut json = serde_json::to_vec_pretty(&file).map_err(|e| self.io("encode", e.into()))?;
        json.push(b'\n');
        fs::create_dir_all(&self.dir).map_err(|e| JournalError::Io {
            action: "create",
            path: self.dir.clone(),
            source: e,
        })?;
        atomic::replace_file(&self.path, &json).map_err(|e| self.io("write", e))
    }

    /// Removes the journal file (durably), e.g. once a corrupt one has been reported.
    pub fn discard(&self) -> Result<(), JournalError> {
        match fs::remove_file(&self.path) {
            Ok(()) => atomic::sync_dir(&self.dir).map_err(|e| self.io("sync the directory of", e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("remove", e)),
        }
    }

    /// Takes the state lock (`STATE_DIR/agent.lock`) without waiting: fails with
    /// [`JournalError::Busy`] while another process holds it. Released when the returned
    /// guard is dropped or the process ends.
    pub fn lock(&self) -> Result<StateLock, JournalError> {
        let path = self.dir.join(LOCK_FILE);
        let io = |action, source| JournalError::Io {
            action,
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(|e| io("create the directory of", e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", e))?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(JournalError::Busy { path }),
            Err(fs::TryLockError::Error(e)) => Err(io("lock", e)),
        }
    }

    fn io(&self, action: &'static str, source: io::Error) -> JournalError {
        JournalError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, reason: String) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}

/// Byte strings as lower-case hex in JSON.
mod hex_bytes {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base16ct::lower::encode_string(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base16ct::lower::decode_vec(&text)
            .map_err(|_| de::Error::custom(format!("{text:?} is not lower-case hex")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Journal {
        let mut update = UpdateRecord::new(
            vec![0xab; 32],
            7,
            "https://updates.example.com/gw/7.suit".into(),
            Slot::B,
            vec![
                ComponentRecord {
                    index: 0,
                    id: ComponentId::new([b"rootfs"]),
                    size: 1 << 20,
                    state: ComponentState::Written,
                    streamed: 0,
                },
                ComponentRecord {
                    index: 1,
                    id: ComponentId::new([b"app" as &[u8], &[0]]),
                    size: 42,
                    state: ComponentState::Staged,
                    streamed: 4096,
                },
            ],
        );
        update.advance(Step::Staged);
        Journal {
            update: Some(update),
            last_outcome: Some(Outcome {
                manifest_digest: vec![1, 2, 3],
                sequence_number: 6,
                slot: Slot::A,
                result: OutcomeResult::Confirmed,
                message: None,
                finished_at: 1_700_000_000,
            }),
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalStore::new(&dir.path().join("state"));
        assert_eq!(store.load().unwrap(), Journal::default());
        let journal = sample();
        store.save(&journal).unwrap();
        assert_eq!(store.load().unwrap(), journal);
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(
            text.contains("\"format\": \"suit-agent-journal\""),
            "{text}"
        );
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(text.contains("\"manifest-digest\": \"abab"), "{text}");
        assert!(text.contains("\"written\""), "{text}");
        store.discard().unwrap();
        assert_eq!(store.load().unwrap(), Journal::default());
        store.discard().unwrap();
    }

    #[test]
    fn component_states_imply_the_earlier_ones() {
        let states = [
            ComponentState::Pending,
            ComponentState::Staged,
            ComponentState::Approved,
            ComponentState::Written,
        ];
        let flags: Vec<_> = states
            .iter()
            .map(|s| (s.is_staged(), s.is_approved(), s.is_written()))
            .collect();
        assert_eq!(
            flags,
            [
                (false, false, false),
                (true, false, false),
                (true, true, false),
                (true, true, true)
            ]
        );
        let journal = sample();
        let update = journal.update.as_ref().unwrap();
        assert!(update.all_components(ComponentState::is_staged));
        assert!(!update.all_components(ComponentState::is_approved));
        assert!(Step::Planned < Step::TrialArmed);
    }

    #[test]
    fn damaged_journals_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalStore::new(dir.path());
        store.save(&sample()).unwrap();
        let good = fs::read(store.path()).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() / 2].to_vec(), "EOF"),
            (b"".to_vec(), "EOF"),
            (vec![0xff; 10], "expected value"),
            (
                b"{\"format\":\"other\",\"version\":1,\"journal\":{}}".to_vec(),
                "format \"other\"",
            ),
            (
                String::from_utf8(good.clone())
                    .unwrap()
                    .replace("\"sequence-number\": 7", "\"sequence-number\": -7")
                    .into_bytes(),
                "invalid value",
            ),
            (
                String::from_utf8(good.clone())
                    .unwrap()
                    .replace("\"source\"", "\"origin\"")
                    .into_bytes(),
                "unknown field `origin`",
            ),
            (
                String::from_utf8(good.clone())
                    .unwrap()
                    .replace("\"manifest-digest\": \"abab", "\"manifest-digest\": \"zzab")
                    .into_bytes(),
                "not lower-case hex",
            ),
            (vec![b' '; MAX_JOURNAL_BYTES as usize + 1], "larger than"),
        ];
        for (bytes, needle) in cases {
            fs::write(store.path(), &bytes).unwrap();
            let err = store.load().unwrap_err();
            assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(needle), "{needle}: {text}");
            assert!(text.contains(&store.path().display().to_string()), "{text}");
        }
        fs::write(
            store.path(),
            String::from_utf8(good)
                .unwrap()
                .replace("\"version\": 1", "\"version\": 2"),
        )
        .unwrap();
        let err = store.load().unwrap_err();
        assert!(
            matches!(
                err,
                JournalError::UnsupportedVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn state_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalStore::new(dir.path());
        let held = store.lock().unwrap();
        let err = store.lock().unwrap_err();
        assert!(matches!(err, JournalError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("another suit-agent"), "{err}");
        drop(held);
        store.lock().unwrap();
    }
}
