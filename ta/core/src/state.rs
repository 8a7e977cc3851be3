//! The TA's persistent state: ONE secure-storage object holding everything (device key, fleet
//! KEK, identity overrides, anti-rollback floors, install state), replaced atomically on every
//! change.
//!
//! Keeping everything in one object is what makes a partial state impossible: floors cannot
//! go missing while the device key stays, and a torn update cannot mix old floors with a new
//! install state. The object is checked on load — magic, format version, a SHA-256 over the
//! whole content, strict CBOR — and a check failure is reported as corrupt state, never
//! repaired or reset. Only a completely absent object is "first use": the TA then generates a
//! new device key, so a wiped state is visible to the outside world as a new device identity
//! (its public key changes) rather than silently reusing the old one with zero floors.
//! OP-TEE's REE-FS cannot stop an attacker with root from restoring an old copy of the whole
//! object (DESIGN.md §6); RPMB can.
//!
//! ```text
//! object "suit-ta-state" = "SUIT-TA" 0x00 | format-version (1 byte) | CBOR body | SHA-256(all before)
//! body = [generation, device-key (48 bytes), kek / null, provisioned,
//!         vendor-id / null, class-id / null, device-id / null,
//!         floors [[component-id, floor]...], pending-install / null, last-outcome,
//!         boot-records [boot-record...]]                 (format 2; format 1 has no boot
//!                                                         records and is still read)
//! ```
//!
//! The boot records (`suit_shared::boot`) are what BOOT_VERIFY answers: at most one per slot,
//! written in the same atomic replacement as the install state they belong to.

use alloc::string::ToString;
use alloc::vec::Vec;

use subtle::ConstantTimeEq;
use suit_shared::abi::{
    read_component_id, read_pending, write_component_id, write_pending, ComponentIdBytes,
    InstallState, LastOutcome,
};
use suit_shared::boot::{read_boot_record, write_boot_record, BootRecord};
use suit_shared::cbor::{Reader, Writer};
use suit_shared::digest::DigestAlg;
use suit_shared::error::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, TaError};
use crate::platform::{Rng, Storage};

/// Name of the state object.
pub const OBJECT_NAME: &str = "suit-ta-state";
const MAGIC: &[u8; 8] = b"SUIT-TA\0";
const FORMAT_VERSION: u8 = 2;
/// The format before boot records; read as "no slot approved for boot".
const FORMAT_VERSION_1: u8 = 1;
/// Length of a P-384 private scalar.
const KEY_LEN: usize = 48;

/// The fleet key-encryption key.
#[derive(Clone)]
pub struct Kek {
    /// The AES key (16 or 32 bytes).
    pub key: Zeroizing<Vec<u8>>,
    /// Its key id.
    pub kid: Vec<u8>,
}

/// Everything the TA keeps across sessions and reboots.
#[derive(Clone)]
pub struct State {
    /// Incremented on every write.
    pub generation: u64,
    /// The device's P-384 private key.
    pub device_key: p384::ecdsa::SigningKey,
    /// The fleet KEK, once provisioned.
    pub kek: Option<Kek>,
    /// Whether PROVISION ran (it runs once).
    pub provisioned: bool,
    /// Vendor id override from provisioning.
    pub vendor_id: Option<Uuid>,
    /// Class id override from provisioning.
    pub class_id: Option<Uuid>,
    /// The device id from provisioning.
    pub device_id: Option<Uuid>,
    /// Anti-rollback floors, sorted by component id.
    pub floors: Vec<(ComponentIdBytes, u64)>,
    /// The install state.
    pub install: InstallState,
    /// How the last install ended.
    pub last_outcome: LastOutcome,
    /// What each slot may boot, at most one record per slot, sorted by slot.
    pub boot: Vec<BootRecord>,
}

impl State {
    /// A fresh state with a new device key drawn from `rng`.
    pub fn generate(rng: &mut impl Rng) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        // A random 384-bit string is a valid scalar except with negligible probability.
        let device_key = loop {
            rng.fill(&mut bytes[..]);
            if let Ok(key) = p384::ecdsa::SigningKey::from_slice(&bytes[..]) {
                break key;
            }
        };
        State {
            generation: 0,
            device_key,
            kek: None,
            provisioned: false,
            vendor_id: None,
            class_id: None,
            device_id: None,
            floors: Vec::new(),
            install: InstallState::Idle,
            last_outcome: LastOutcome::None,
            boot: Vec::new(),
        }
    }

    /// The boot record of `slot`.
    pub fn boot_record(&self, slot: u64) -> Option<&BootRecord> {
        self.boot.iter().find(|r| r.slot == slot)
    }

    /// Records what `record.slot` may boot, replacing what it held.
    pub fn set_boot_record(&mut self, record: BootRecord) {
        self.boot.retain(|r| r.slot != record.slot);
        self.boot.push(record);
        self.boot.sort_by_key(|r| r.slot);
    }

    /// The anti-rollback floor of a component (0 if it never had one).
    pub fn floor(&self, id: &ComponentIdBytes) -> u64 {
        self.floors
            .iter()
            .find(|(c, _)| c == id)
            .map_or(0, |(_, f)| *f)
    }

    /// Raises a component's floor to `value` (never lowers it). A floor of 0 is no floor: a
    /// factory image with sequence number 0 leaves the component without one.
    pub fn raise_floor(&mut self, id: &ComponentIdBytes, value: u64) {
        match self.floors.iter_mut().find(|(c, _)| c == id) {
            Some((_, f)) => *f = (*f).max(value),
            None if value == 0 => {}
            None => {
                self.floors.push((id.clone(), value));
                self.floors.sort();
            }
        }
    }

    /// The object's encoding.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.array(11).u64(self.generation);
        let mut key = self.device_key.to_bytes();
        w.bytes(&key);
        key.zeroize();
        match &self.kek {
            Some(k) => w.array(2).bytes(&k.key).bytes(&k.kid),
            None => w.null(),
        };
        w.bool(self.provisioned);
        for id in [&self.vendor_id, &self.class_id, &self.device_id] {
            match id {
                Some(u) => w.bytes(&u.0),
                None => w.null(),
            };
        }
        w.array(self.floors.len());
        for (id, floor) in &self.floors {
            w.array(2);
            write_component_id(&mut w, id);
            w.u64(*floor);
        }
        match &self.install {
            InstallState::Idle => {
                w.null();
            }
            InstallState::Trial(p) => write_pending(&mut w, p),
        }
        w.u64(match self.last_outcome {
            LastOutcome::None => 0,
            LastOutcome::Confirmed => 1,
            LastOutcome::RolledBack => 2,
        });
        w.array(self.boot.len());
        for r in &self.boot {
            write_boot_record(&mut w, r);
        }
        let body = Zeroizing::new(w.into_bytes());
        let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 41));
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&body);
        let sum = DigestAlg::Sha256.digest(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// Decodes and checks an object's content.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let corrupt = |what: &str| TaError::CorruptState(what.to_string());
        if bytes.len() < MAGIC.len() + 1 + 32 {
            return Err(corrupt("too short"));
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt("not a SUIT TA state object"));
        }
        let version = bytes[MAGIC.len()];
        if version != FORMAT_VERSION && version != FORMAT_VERSION_1 {
            return Err(TaError::CorruptState(alloc::format!(
                "format version {} is not the version {FORMAT_VERSION} this TA reads",
                bytes[MAGIC.len()]
            )));
        }
        let (content, sum) = bytes.split_at(bytes.len() - 32);
        let expected = DigestAlg::Sha256.digest(content);
        if !bool::from(expected.as_bytes().ct_eq(sum)) {
            return Err(corrupt("checksum mismatch"));
        }
        let body = &content[MAGIC.len() + 1..];
        Reader::decode_exact(body, "TA state", |r| {
            r.array_of(
                if version == FORMAT_VERSION_1 { 10 } else { 11 },
                "TA state",
            )?;
            let generation = r.u64()?;
            let key = r.bytes()?;
            let device_key = p384::ecdsa::SigningKey::from_slice(key).map_err(|_| {
                suit_shared::Error::InvalidValue {
                    context: "TA state",
                    element: "device key",
                    reason: "not a P-384 private key",
                }
            })?;
            let kek = if r.is(minicbor_null()) {
                r.null()?;
                None
            } else {
                r.array_of(2, "[kek, kid]")?;
                Some(Kek {
                    key: Zeroizing::new(r.bytes()?.to_vec()),
                    kid: r.bytes()?.to_vec(),
                })
            };
            let provisioned = r.bool()?;
            let mut ids = [None, None, None];
            for id in &mut ids {
                *id = if r.is(minicbor_null()) {
                    r.null()?;
                    None
                } else {
                    let b = r.bytes()?;
                    Some(Uuid(<[u8; 16]>::try_from(b).map_err(|_| {
                        suit_shared::Error::InvalidValue {
                            context: "TA state",
                            element: "identity",
                            reason: "not a UUID",
                        }
                    })?))
                };
            }
            let n = r.array()?;
            let mut floors = Vec::new();
            for _ in 0..n {
                r.array_of(2, "floor")?;
                floors.push((read_component_id(r)?, r.u64()?));
            }
            let install = if r.is(minicbor_null()) {
                r.null()?;
                InstallState::Idle
            } else {
                InstallState::Trial(read_pending(r)?)
            };
            let last_outcome = match r.u64()? {
                0 => LastOutcome::None,
                1 => LastOutcome::Confirmed,
                2 => LastOutcome::RolledBack,
                _ => {
                    return Err(suit_shared::Error::InvalidValue {
                        context: "TA state",
                        element: "last outcome",
                        reason: "unknown value",
                    })
                }
            };
            let mut boot: Vec<BootRecord> = Vec::new();
            if version != FORMAT_VERSION_1 {
                for _ in 0..r.array()? {
                    let record = read_boot_record(r)?;
                    if boot.last().is_some_and(|last| last.slot >= record.slot) {
                        return Err(suit_shared::Error::InvalidValue {
                            context: "TA state",
                            element: "boot records",
                            reason: "not one per slot in slot order",
                        });
                    }
                    boot.push(record);
                }
            }
            Ok(State {
                generation,
                device_key,
                kek,
                provisioned,
                vendor_id: ids[0],
                class_id: ids[1],
                device_id: ids[2],
                floors,
                install,
                last_outcome,
                boot,
            })
        })
        .map_err(|e| TaError::CorruptState(alloc::format!("{e}")))
    }

    /// Loads the state; a missing object is first use (a new state is generated and stored),
    /// a present but invalid one is an error.
    pub fn load_or_create(storage: &mut impl Storage, rng: &mut impl Rng) -> Result<Self> {
        match storage.read(OBJECT_NAME)? {
            Some(mut bytes) => {
                let state = State::decode(&bytes);
                bytes.zeroize();
                state
            }
            None => {
                let state = State::generate(rng);
                storage.replace(OBJECT_NAME, &state.encode())?;
                Ok(state)
            }
        }
    }

    /// Writes `self` with the next generation number, atomically.
    pub fn store(&mut self, storage: &mut impl Storage) -> Result<()> {
        self.generation = self.generation.wrapping_add(1);
        storage.replace(OBJECT_NAME, &self.encode())?;
        Ok(())
    }
}

fn minicbor_null() -> minicbor::data::Type {
    minicbor::data::Type::Null
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use suit_shared::abi::{InstalledComponent, PendingInstall};

    struct Counter(u8);
    impl Rng for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    fn sample() -> State {
        let mut s = State::generate(&mut Counter(0));
        s.kek = Some(Kek {
            key: Zeroizing::new(vec![7; 32]),
            kid: b"fleet".to_vec(),
        });
        s.provisioned = true;
        s.device_id = Some(Uuid([5; 16]));
        s.raise_floor(&vec![b"b".to_vec()], 4);
        s.raise_floor(&vec![b"a".to_vec()], 2);
        s.raise_floor(&vec![b"a".to_vec()], 1);
        s.raise_floor(&vec![b"c".to_vec()], 0);
        let d = DigestAlg::Sha256.digest(b"x");
        s.set_boot_record(BootRecord {
            slot: 1,
            sequence_number: 9,
            status: suit_shared::boot::BootStatus::Trial,
            components: vec![suit_shared::boot::BootComponent {
                component_id: vec![b"a".to_vec()],
                verity: suit_shared::verity::VerityParams {
                    root: [3; 32],
                    salt: vec![4; 32],
                    data_blocks: 1,
                },
            }],
        });
        s.install = InstallState::Trial(PendingInstall {
            slot: 1,
            sequence_number: 9,
            manifest_digest: d.clone(),
            components: vec![InstalledComponent {
                component_id: vec![b"a".to_vec()],
                digest: d,
                size: 1,
            }],
        });
        s
    }

    #[test]
    fn round_trip_and_floors() {
        let s = sample();
        assert_eq!(s.floor(&vec![b"a".to_vec()]), 2);
        assert_eq!(s.floors.len(), 2, "a floor of 0 is not recorded");
        let bytes = s.encode();
        let back = State::decode(&bytes).unwrap();
        assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn format_1_objects_load_without_boot_records() {
        let mut s = sample();
        s.boot.clear();
        let v2 = s.encode();
        // Format 1 = the same body without the last element (the empty boot-record array).
        let body = &v2[MAGIC.len() + 1..v2.len() - 32];
        assert_eq!(body[0], 0x8b);
        assert_eq!(body[body.len() - 1], 0x80);
        let mut v1 = MAGIC.to_vec();
        v1.push(FORMAT_VERSION_1);
        v1.push(0x8a);
        v1.extend_from_slice(&body[1..body.len() - 1]);
        let sum = DigestAlg::Sha256.digest(&v1);
        v1.extend_from_slice(sum.as_bytes());
        let back = State::decode(&v1).unwrap();
        assert!(back.boot.is_empty());
        assert_eq!(back.encode(), v2);
    }

    #[test]
    fn boot_records_are_one_per_slot() {
        let mut s = sample();
        let mut other = s.boot[0].clone();
        other.slot = 0;
        s.set_boot_record(other.clone());
        other.sequence_number = 10;
        s.set_boot_record(other);
        assert_eq!(s.boot.len(), 2);
        assert_eq!(s.boot_record(0).map(|r| r.sequence_number), Some(10));
        let back = State::decode(&s.encode()).unwrap();
        assert_eq!(back.boot, s.boot);
    }

    #[test]
    fn any_corruption_is_detected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x40;
            assert!(
                matches!(State::decode(&b), Err(TaError::CorruptState(_))),
                "byte {i}"
            );
        }
        assert!(State::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(State::decode(&[]).is_err());
    }
}
