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
//! The object's format (versioned, owned by the state, independent of the ABI): [`format`].
//!
//! The boot records (`suit_shared::boot`) are what BOOT_VERIFY answers: at most one per slot,
//! written in the same atomic replacement as the install state they belong to.

mod format;

use alloc::vec::Vec;

use suit_shared::abi::{InstallState, LastOutcome};
use suit_shared::boot::BootRecord;
use suit_shared::component::ComponentId;
use suit_shared::error::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::error::Result;
use crate::platform::{Rng, Storage};

/// Name of the state object.
pub const OBJECT_NAME: &str = "suit-ta-state";
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
    pub floors: Vec<(ComponentId, u64)>,
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
    pub fn floor(&self, id: &ComponentId) -> u64 {
        self.floors
            .iter()
            .find(|(c, _)| c == id)
            .map_or(0, |(_, f)| *f)
    }

    /// Raises a component's floor to `value` (never lowers it). A floor of 0 is no floor: a
    /// factory image with sequence number 0 leaves the component without one.
    pub fn raise_floor(&mut self, id: &ComponentId, value: u64) {
        match self.floors.iter_mut().find(|(c, _)| c == id) {
            Some((_, f)) => *f = (*f).max(value),
            None if value == 0 => {}
            None => {
                self.floors.push((id.clone(), value));
                self.floors.sort();
            }
        }
    }

    /// The object's encoding ([`format`]).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        format::encode(self)
    }

    /// Decodes and checks an object's content (format 2, or 1 from before boot records).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        format::decode(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TaError;
    use alloc::vec;
    use suit_shared::abi::{InstalledComponent, PendingInstall};
    use suit_shared::digest::DigestAlg;

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
        s.raise_floor(&ComponentId::new([b"b"]), 4);
        s.raise_floor(&ComponentId::new([b"a"]), 2);
        s.raise_floor(&ComponentId::new([b"a"]), 1);
        s.raise_floor(&ComponentId::new([b"c"]), 0);
        let d = DigestAlg::Sha256.digest(b"x");
        s.set_boot_record(BootRecord {
            slot: 1,
            sequence_number: 9,
            status: suit_shared::boot::BootStatus::Trial,
            components: vec![suit_shared::boot::BootComponent {
                component_id: ComponentId::new([b"a"]),
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
                component_id: ComponentId::new([b"a"]),
                digest: d,
                size: 1,
            }],
        });
        s
    }

    #[test]
    fn round_trip_and_floors() {
        let s = sample();
        assert_eq!(s.floor(&ComponentId::new([b"a"])), 2);
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
        let body = &v2[format::magic().len() + 1..v2.len() - 32];
        assert_eq!(body[0], 0x8b);
        assert_eq!(body[body.len() - 1], 0x80);
        let mut v1 = format::magic().to_vec();
        v1.push(format::FORMAT_VERSION_1);
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

    /// A format-2 object exactly as the TA wrote it before the state had its own codec (a
    /// device in the field): it still loads, and is written back byte for byte.
    #[test]
    fn format_2_objects_from_the_field_load() {
        let hex = concat!(
            "535549542d544100028b0058300102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "202122232425262728292a2b2c2d2e2f30825820070707070707070707070707070707070707070707070707",
            "070707070707070745666c656574f5f6f6500505050505050505050505050505050582828141610282814162",
            "04840109822f58202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a488181838141",
            "61822f58202d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a488101008184010900",
            "8184814161582003030303030303030303030303030303030303030303030303030303030303035820040404",
            "040404040404040404040404040404040404040404040404040404040401892a9f2b6f45556a8371eb0fa4f1",
            "cd4e5805d63b902a1afdd6e821032e990069",
        );
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(bytes[format::magic().len()], format::FORMAT_VERSION);
        let state = State::decode(&bytes).unwrap();
        let expected = sample();
        assert_eq!(state.floors, expected.floors);
        assert_eq!(state.install, expected.install);
        assert_eq!(state.boot, expected.boot);
        assert_eq!(state.device_id, expected.device_id);
        assert_eq!(state.device_key, expected.device_key);
        assert_eq!(state.encode().as_slice(), bytes.as_slice());
    }
}
