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
//!         floors [[component-id, floor]...], pending-install / null, last-outcome]
//! ```

use alloc::string::ToString;
use alloc::vec::Vec;

use subtle::ConstantTimeEq;
use suit_shared::abi::{
    read_component_id, read_pending, write_component_id, write_pending, ComponentIdBytes,
    InstallState, LastOutcome,
};
use suit_shared::cbor::{Reader, Writer};
use suit_shared::digest::DigestAlg;
use suit_shared::error::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, TaError};
use crate::platform::{Rng, Storage};

/// Name of the state object.
pub const OBJECT_NAME: &str = "suit-ta-state";
const MAGIC: &[u8; 8] = b"SUIT-TA\0";
const FORMAT_VERSION: u8 = 1;
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
        }
    }

    /// The anti-rollback floor of a component (0 if it never had one).
    pub fn floor(&self, id: &ComponentIdBytes) -> u64 {
        self.floors
            .iter()
            .find(|(c, _)| c == id)
            .map_or(0, |(_, f)| *f)
    }

    /// Raises a component's floor to `value` (never lowers it).
    pub fn raise_floor(&mut self, id: &ComponentIdBytes, value: u64) {
        match self.floors.iter_mut().find(|(c, _)| c == id) {
            Some((_, f)) => *f = (*f).max(value),
            None => {
                self.floors.push((id.clone(), value));
                self.floors.sort();
            }
        }
    }

    /// The object's encoding.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.array(10).u64(self.generation);
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
        if bytes[MAGIC.len()] != FORMAT_VERSION {
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
            r.array_of(10, "TA state")?;
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
        let d = DigestAlg::Sha256.digest(b"x");
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
        let bytes = s.encode();
        let back = State::decode(&bytes).unwrap();
        assert_eq!(back.encode(), bytes);
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
