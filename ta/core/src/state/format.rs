//! The state object's format, owned by the state alone: the ABI may change its encodings
//! without changing a byte of what is stored. Built on the generic codecs of
//! [`suit_shared::codec`] only.
//!
//! ```text
//! object = "SUIT-TA" 0x00 | format-version (1 byte) | CBOR body | SHA-256(all before)
//! body   = [generation, device-key (48 bytes), device-public-key (97 bytes, SEC1)
//!           — or, for an X25519 agreement key, 32 and 32 bytes (RFC 7748),
//!           [kek, kid] / null, provisioned,
//!           vendor-id / null, class-id / null, device-id / null,
//!           floors [[component-id, floor]...], pending / null, last-outcome (0 none,
//!           1 confirmed, 2 rolled back), boot-records [boot-record...],
//!           anchor-sequence, anchor-set / null,
//!           [signing-key (48 bytes), signing-public-key (97 bytes, SEC1)] / null]
//! component-id = [* bstr]          digest = [cose-alg, bytes]
//! pending      = [slot, sequence-number, manifest-digest, [[component-id, digest, size]...]]
//! boot-record  = [slot, sequence-number, status (0 trial, 1 good),
//!                 [[component-id, verity-root (32 bytes), salt, data-blocks]...]]
//! anchor-set   = [policy (0 any one, 1 all), [[cose-alg, public-key, kid / null]...]]
//! ```
//!
//! Format 4 is the one written: the trust-anchor set in force after the last anchor update
//! (null: the built-in set) and that update's sequence number (0: none yet;
//! [`suit_shared::anchors`]), and the signing key beside the key-agreement key (the
//! `device-key` of older formats keeps its role of ECDH-ES recipient, so payloads encrypted
//! to it still decrypt). Format 3 is format 4 without the last three fields, read as "the
//! built-in set, no update yet, no signing key" (the state generates one when it loads). Format 2 (before the crypto provider made the device key) is
//! the same body without the device public key: the provider computes it from the scalar
//! (the RustCrypto provider can; OP-TEE's GP API cannot, so a GP TA refuses such an object).
//! Format 1 (devices before verified boot) is format 2 without the boot records and is still
//! read, as "no slot approved for boot".

use alloc::vec::Vec;

use subtle::ConstantTimeEq;
use suit_shared::abi::{InstallState, InstalledComponent, LastOutcome, PendingInstall};
use suit_shared::anchors::AnchorSet;
use suit_shared::boot::{BootComponent, BootRecord, BootStatus};
use suit_shared::cbor::{Reader, Writer};
use suit_shared::codec::{Bytes, Codec, List, Opt, Pair};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::error::Uuid;
use zeroize::Zeroizing;

use super::{DeviceCurve, DeviceKey, Kek, State};
use crate::error::{Corruption, Result, TaError};

const MAGIC: &[u8; 8] = b"SUIT-TA\0";
/// The format written.
pub(super) const FORMAT_VERSION: u8 = 4;
/// The format before the anchor set was stored.
pub(super) const FORMAT_VERSION_3: u8 = 3;
/// The format before the device public key was stored.
pub(super) const FORMAT_VERSION_2: u8 = 2;
/// The format before boot records.
pub(super) const FORMAT_VERSION_1: u8 = 1;
/// Length of the trailing checksum.
const SUM_LEN: usize = 32;

fn invalid(element: &'static str, reason: &'static str) -> suit_shared::Error {
    suit_shared::Error::InvalidValue {
        context: "TA state",
        element,
        reason,
    }
}

/// A stored component id: `[* bstr]`.
struct StoredId;

impl Codec<ComponentId> for StoredId {
    fn write(value: &ComponentId, w: &mut Writer) {
        w.array(value.parts().len());
        for part in value.parts() {
            w.bytes(part);
        }
    }
    fn read(r: &mut Reader<'_>) -> suit_shared::Result<ComponentId> {
        List::<Bytes>::read(r).map(ComponentId::from)
    }
}

/// A stored digest: `[cose-alg, bytes]`.
struct StoredDigest;

impl Codec<DigestValue> for StoredDigest {
    fn write(value: &DigestValue, w: &mut Writer) {
        w.array(2)
            .i64(value.alg().cose_id())
            .bytes(value.as_bytes());
    }
    fn read(r: &mut Reader<'_>) -> suit_shared::Result<DigestValue> {
        r.array_of(2, "stored digest")?;
        let alg = DigestAlg::from_cose(r.i64()?)?;
        DigestValue::new(alg, r.bytes()?).ok_or(invalid("digest", "wrong length"))
    }
}

/// The stored pending install (null when idle).
struct StoredInstall;

impl Codec<InstallState> for StoredInstall {
    fn write(value: &InstallState, w: &mut Writer) {
        let InstallState::Trial(p) = value else {
            w.null();
            return;
        };
        w.array(4).u64(p.slot).u64(p.sequence_number);
        StoredDigest::write(&p.manifest_digest, w);
        w.array(p.components.len());
        for c in &p.components {
            w.array(3);
            StoredId::write(&c.component_id, w);
            StoredDigest::write(&c.digest, w);
            w.u64(c.size);
        }
    }
    fn read(r: &mut Reader<'_>) -> suit_shared::Result<InstallState> {
        if r.is(minicbor::data::Type::Null) {
            r.null()?;
            return Ok(InstallState::Idle);
        }
        r.array_of(4, "stored pending install")?;
        let slot = r.u64()?;
        let sequence_number = r.u64()?;
        let manifest_digest = StoredDigest::read(r)?;
        let mut components = Vec::new();
        for _ in 0..r.array()? {
            r.array_of(3, "stored installed component")?;
            components.push(InstalledComponent {
                component_id: StoredId::read(r)?,
                digest: StoredDigest::read(r)?,
                size: r.u64()?,
            });
        }
        Ok(InstallState::Trial(PendingInstall {
            slot,
            sequence_number,
            manifest_digest,
            components,
        }))
    }
}

/// A stored boot component: `[component-id, verity-root, salt, data-blocks]`.
struct StoredBootComponent;

impl Codec<BootComponent> for StoredBootComponent {
    fn write(value: &BootComponent, w: &mut Writer) {
        w.array(4);
        StoredId::write(&value.component_id, w);
        w.bytes(&value.verity.root)
            .bytes(&value.verity.salt)
            .u64(value.verity.data_blocks);
    }
    fn read(r: &mut Reader<'_>) -> suit_shared::Result<BootComponent> {
        r.array_of(4, "stored boot component")?;
        BootComponent::new(StoredId::read(r)?, r.bytes()?, r.bytes()?, r.u64()?)
    }
}

/// A stored boot record: `[slot, sequence-number, status, [boot-component...]]`.
struct StoredBoot;

impl Codec<BootRecord> for StoredBoot {
    fn write(value: &BootRecord, w: &mut Writer) {
        let status = match value.status {
            BootStatus::Trial => 0,
            BootStatus::Good => 1,
        };
        w.array(4)
            .u64(value.slot)
            .u64(value.sequence_number)
            .u64(status);
        List::<StoredBootComponent>::write(&value.components, w);
    }
    fn read(r: &mut Reader<'_>) -> suit_shared::Result<BootRecord> {
        r.array_of(4, "stored boot record")?;
        Ok(BootRecord {
            slot: r.u64()?,
            sequence_number: r.u64()?,
            status: match r.u64()? {
                0 => BootStatus::Trial,
                1 => BootStatus::Good,
                _ => return Err(invalid("boot status", "unknown value")),
            },
            components: List::<StoredBootComponent>::read(r)?,
        })
    }
}

fn outcome_code(outcome: LastOutcome) -> u64 {
    match outcome {
        LastOutcome::None => 0,
        LastOutcome::Confirmed => 1,
        LastOutcome::RolledBack => 2,
    }
}

fn outcome(code: u64) -> suit_shared::Result<LastOutcome> {
    [
        LastOutcome::None,
        LastOutcome::Confirmed,
        LastOutcome::RolledBack,
    ]
    .into_iter()
    .find(|o| outcome_code(*o) == code)
    .ok_or(invalid("last outcome", "unknown value"))
}

type KekCodec = Opt<Pair<Bytes, Bytes>>;
type FloorsCodec = List<Pair<StoredId, u64>>;

/// The object's bytes, in the current format.
pub(super) fn encode(state: &State) -> Zeroizing<Vec<u8>> {
    let mut w = Writer::new();
    w.array(15).u64(state.generation);
    w.bytes(state.agreement_key.scalar());
    w.bytes(state.agreement_key.public_sec1());
    let kek = Zeroizing::new(state.kek.as_ref().map(|k| (k.key.to_vec(), k.kid.clone())));
    KekCodec::write(&kek, &mut w);
    w.bool(state.provisioned);
    for id in [&state.vendor_id, &state.class_id, &state.device_id] {
        Opt::<Uuid>::write(id, &mut w);
    }
    FloorsCodec::write(&state.floors, &mut w);
    StoredInstall::write(&state.install, &mut w);
    w.u64(outcome_code(state.last_outcome));
    List::<StoredBoot>::write(&state.boot, &mut w);
    w.u64(state.anchor_sequence);
    // A stored set holds signature anchors only (`AnchorSet::apply` refuses others).
    match state.anchors.as_ref().and_then(AnchorSet::encode) {
        Some(set) => w.raw(&set),
        None => w.null(),
    };
    match &state.signing_key {
        Some(key) => w.array(2).bytes(key.scalar()).bytes(key.public_sec1()),
        None => w.null(),
    };
    let body = Zeroizing::new(w.into_bytes());
    let mut out = Zeroizing::new(Vec::with_capacity(MAGIC.len() + 1 + body.len() + SUM_LEN));
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&body);
    let sum = DigestAlg::Sha256.digest(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Reads and checks an object of format 4, 3, 2 or 1.
pub(super) fn decode(bytes: &[u8]) -> Result<State> {
    let corrupt = |what: &str| TaError::CorruptState(what.into());
    if bytes.len() < MAGIC.len() + 1 + SUM_LEN {
        return Err(corrupt("too short"));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not a SUIT TA state object"));
    }
    let version = bytes[MAGIC.len()];
    if ![
        FORMAT_VERSION,
        FORMAT_VERSION_3,
        FORMAT_VERSION_2,
        FORMAT_VERSION_1,
    ]
    .contains(&version)
    {
        return Err(TaError::CorruptState(Corruption::Reason(alloc::format!(
            "format version {version} is not the version {FORMAT_VERSION} this TA reads"
        ))));
    }
    let (content, sum) = bytes.split_at(bytes.len() - SUM_LEN);
    let expected = DigestAlg::Sha256.digest(content);
    if !bool::from(expected.as_bytes().ct_eq(sum)) {
        return Err(corrupt("checksum mismatch"));
    }
    let body = &content[MAGIC.len() + 1..];
    Reader::decode_exact(body, "TA state", |r| {
        let fields = match version {
            FORMAT_VERSION_1 => 10,
            FORMAT_VERSION_2 => 11,
            FORMAT_VERSION_3 => 12,
            _ => 15,
        };
        r.array_of(fields, "TA state")?;
        let generation = r.u64()?;
        let scalar = r.bytes()?;
        let public = if version >= FORMAT_VERSION_3 {
            Some(r.bytes()?)
        } else {
            None
        };
        let agreement_key = DeviceKey::from_stored(scalar, public)?;
        let kek = KekCodec::read(r)?.map(|(key, kid)| Kek {
            key: Zeroizing::new(key),
            kid,
        });
        let provisioned = r.bool()?;
        let vendor_id = Opt::<Uuid>::read(r)?;
        let class_id = Opt::<Uuid>::read(r)?;
        let device_id = Opt::<Uuid>::read(r)?;
        let floors = FloorsCodec::read(r)?;
        let install = StoredInstall::read(r)?;
        let last_outcome = outcome(r.u64()?)?;
        let mut boot: Vec<BootRecord> = Vec::new();
        if version != FORMAT_VERSION_1 {
            for _ in 0..r.array()? {
                let record = StoredBoot::read(r)?;
                if boot.last().is_some_and(|last| last.slot >= record.slot) {
                    return Err(invalid("boot records", "not one per slot in slot order"));
                }
                boot.push(record);
            }
        }
        let (anchor_sequence, anchors) = if version == FORMAT_VERSION {
            let sequence = r.u64()?;
            let set = if r.is(minicbor::data::Type::Null) {
                r.null()?;
                None
            } else {
                Some(AnchorSet::read(r)?)
            };
            (sequence, set)
        } else {
            (0, None)
        };
        let signing_key = if version != FORMAT_VERSION {
            None
        } else if r.is(minicbor::data::Type::Null) {
            r.null()?;
            None
        } else {
            r.array_of(2, "signing key")?;
            let scalar = r.bytes()?;
            let key = DeviceKey::from_stored(scalar, Some(r.bytes()?))?;
            if key.curve() != DeviceCurve::P384 {
                return Err(invalid("signing key", "not a P-384 key"));
            }
            Some(key)
        };
        Ok(State {
            generation,
            agreement_key,
            signing_key,
            kek,
            provisioned,
            vendor_id,
            class_id,
            device_id,
            floors,
            install,
            last_outcome,
            boot,
            anchor_sequence,
            anchors,
        })
    })
    .map_err(|e| TaError::CorruptState(Corruption::Decode(e)))
}

#[cfg(test)]
pub(super) fn magic() -> &'static [u8] {
    MAGIC
}
