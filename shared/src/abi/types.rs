//! The messages of the ABI: each type with its wire encoding beside it.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::{MAX_CHUNK_LIMIT, MAX_ITEMS, MAX_NONCE};
use crate::cbor::{Reader, Writer};
use crate::codec::{Bytes, Codec, Flat, List, Opt, Pair, Text, U32};
use crate::component::ComponentId;
use crate::digest::{DigestAlg, DigestValue};
use crate::error::{Error, Result, Uuid};
use crate::wire_struct;

/// Declares a field-less enum that travels as an unsigned code, with both directions of its
/// [`Codec`] from one list of `Variant = code`.
macro_rules! wire_code_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl Codec<$name> for $name {
            fn write(value: &$name, w: &mut Writer) {
                w.u64(match value {
                    $( $name::$variant => $code, )*
                });
            }
            fn read(r: &mut Reader<'_>) -> Result<$name> {
                match r.u64()? {
                    $( $code => Ok($name::$variant), )*
                    _ => Err(Error::InvalidValue {
                        context: r.context(),
                        element: $what,
                        reason: "unknown value",
                    }),
                }
            }
        }
    };
}

wire_code_enum! {
    /// Secure storage backing the TA's state.
    pub enum StorageKind: "storage" {
        /// OP-TEE REE-FS: encrypted and authenticated, but an old copy can be restored.
        ReeFs = 0,
        /// OP-TEE RPMB: replay-protected.
        Rpmb = 1,
        /// Files of the host simulator: no protection at all.
        Simulator = 2,
    }
}

impl StorageKind {
    /// Readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::ReeFs => "REE-FS (no rollback protection of its own)",
            StorageKind::Rpmb => "RPMB (replay-protected)",
            StorageKind::Simulator => "simulator files (NOT a TEE, no protection)",
        }
    }
}

wire_code_enum! {
    /// How the last install ended.
    pub enum LastOutcome: "last outcome" {
        /// No install has ended yet.
        None = 0,
        /// Confirmed; floors raised.
        Confirmed = 1,
        /// Rolled back; floors unchanged.
        RolledBack = 2,
    }
}

/// A digest on the ABI: `[alg, bytes]`.
impl Codec<DigestValue> for DigestValue {
    fn write(value: &DigestValue, w: &mut Writer) {
        w.array(2)
            .i64(value.alg().cose_id())
            .bytes(value.as_bytes());
    }
    fn read(r: &mut Reader<'_>) -> Result<DigestValue> {
        r.array_of(2, "[digest-alg, digest-bytes]")?;
        let alg = DigestAlg::from_cose(r.i64()?)?;
        DigestValue::new(alg, r.bytes()?).ok_or(Error::InvalidValue {
            context: r.context(),
            element: "digest",
            reason: "length does not match its algorithm",
        })
    }
}

/// A component id `[* bstr]`.
pub struct ComponentIdCodec;

impl Codec<ComponentId> for ComponentIdCodec {
    fn write(value: &ComponentId, w: &mut Writer) {
        w.array(value.parts().len());
        for part in value.parts() {
            Bytes::write(part, w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<ComponentId> {
        List::<Bytes>::read(r).map(ComponentId::from)
    }
}

/// A component's anti-rollback floor: `[component-id, floor]`.
pub type FloorCodec = Pair<ComponentIdCodec, u64>;
/// The floors of several components.
pub type Floors = Vec<(ComponentId, u64)>;

wire_struct! {
    /// One component of a recorded install: what its slot must contain.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct InstalledComponent: "[component-id, digest, size]" {
        /// The component id.
        pub component_id: ComponentId as ComponentIdCodec,
        /// Digest of the plaintext image.
        pub digest: DigestValue,
        /// Size of the plaintext image.
        pub size: u64,
    }
}

wire_struct! {
    /// An install recorded by COMMIT and not yet confirmed or rolled back.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PendingInstall: "pending install" {
        /// The slot the components were written to.
        pub slot: u64,
        /// The manifest's sequence number (the floor after CONFIRM).
        pub sequence_number: u64,
        /// Digest of the manifest (authentication wrapper digest).
        pub manifest_digest: DigestValue,
        /// The components written.
        pub components: Vec<InstalledComponent> as List<InstalledComponent>,
    }
}

/// Persistent install state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallState {
    /// No install pending.
    Idle,
    /// Committed and awaiting the trial boot's CONFIRM or a ROLLBACK.
    Trial(PendingInstall),
}

/// On the wire: null when idle, else the pending install.
impl Codec<InstallState> for InstallState {
    fn write(value: &InstallState, w: &mut Writer) {
        match value {
            InstallState::Idle => {
                w.null();
            }
            InstallState::Trial(p) => PendingInstall::write(p, w),
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<InstallState> {
        Ok(match Opt::<PendingInstall>::read(r)? {
            None => InstallState::Idle,
            Some(p) => InstallState::Trial(p),
        })
    }
}

wire_struct! {
    /// Algorithms the TA implements, as COSE ids.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct Algorithms: "algorithms" {
        /// Digests.
        pub digest: Vec<i64> as List<i64>,
        /// Manifest signatures.
        pub signature: Vec<i64> as List<i64>,
        /// Content encryption.
        pub content_encryption: Vec<i64> as List<i64>,
        /// Key distribution.
        pub key_distribution: Vec<i64> as List<i64>,
    }
}

/// A `u32` limit in `MIN..=MAX`; anything else is refused, never clamped.
pub struct Limit<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> Codec<u32> for Limit<MIN, MAX> {
    fn write(value: &u32, w: &mut Writer) {
        w.u64((*value).into());
    }
    fn read(r: &mut Reader<'_>) -> Result<u32> {
        let v = r.u64()?;
        match u32::try_from(v) {
            Ok(v) if (MIN..=MAX).contains(&u64::from(v)) => Ok(v),
            _ => Err(Error::InvalidValue {
                context: r.context(),
                element: "limit",
                reason: "outside the range the ABI allows",
            }),
        }
    }
}

/// The largest chunk a TA may announce: 1 byte to [`MAX_CHUNK_LIMIT`].
pub type ChunkLimit = Limit<1, { MAX_CHUNK_LIMIT as u64 }>;
/// The largest envelope a TA may announce: at least 1 byte.
pub type EnvelopeLimit = Limit<1, { u32::MAX as u64 }>;

wire_struct! {
    /// GET_INFO response.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Info: "GET_INFO reply" {
        /// The TA's ABI version.
        pub abi_version: u32 as U32,
        /// Largest bulk chunk the TA accepts (1 to [`MAX_CHUNK_LIMIT`]).
        pub max_chunk: u32 as ChunkLimit,
        /// Largest envelope LOAD_MANIFEST accepts (at least 1).
        pub max_envelope: u32 as EnvelopeLimit,
        /// Supported algorithms.
        pub algorithms: Algorithms,
        /// Vendor id.
        pub vendor_id: Uuid,
        /// Class id.
        pub class_id: Uuid,
        /// Device id, if provisioned.
        pub device_id: Option<Uuid> as Opt<Uuid>,
        /// The device's P-384 key-agreement public key (SEC1 uncompressed): encrypt payloads
        /// to it (ECDH-ES).
        pub device_public_key: Vec<u8> as Bytes,
        /// Secure storage in force.
        pub storage: StorageKind,
        /// Whether PROVISION has run (and is now locked).
        pub provisioned: bool,
        /// Whether a fleet KEK is present.
        pub kek_present: bool,
        /// Anti-rollback floors per component.
        pub floors: Floors as List<FloorCodec>,
        /// Install state.
        pub install: InstallState,
        /// How the last install ended.
        pub last_outcome: LastOutcome,
        /// The device's P-384 signing public key (SEC1 uncompressed): verify approval tokens
        /// and SUIT reports with it.
        pub signing_public_key: Vec<u8> as Bytes,
    }
}

/// Where a planned component's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadSource {
    /// Fetched from a URI.
    Uri(String),
    /// Carried in the envelope under this key (`#name`).
    Integrated(String),
    /// Content bytes in the manifest itself (directive-write).
    Content(Vec<u8>),
}

/// On the wire: `[0, uri] / [1, key] / [2, content]`.
impl Codec<PayloadSource> for PayloadSource {
    fn write(value: &PayloadSource, w: &mut Writer) {
        match value {
            PayloadSource::Uri(u) => w.array(2).u64(0).str(u),
            PayloadSource::Integrated(k) => w.array(2).u64(1).str(k),
            PayloadSource::Content(c) => w.array(2).u64(2).bytes(c),
        };
    }
    fn read(r: &mut Reader<'_>) -> Result<PayloadSource> {
        r.array_of(2, "payload source")?;
        Ok(match r.u64()? {
            0 => PayloadSource::Uri(Text::read(r)?),
            1 => PayloadSource::Integrated(Text::read(r)?),
            2 => PayloadSource::Content(Bytes::read(r)?),
            _ => {
                return Err(Error::InvalidValue {
                    context: "plan item",
                    element: "source",
                    reason: "unknown source kind",
                })
            }
        })
    }
}

wire_struct! {
    /// One component the install plan writes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PlanItem: "plan item" {
        /// Index in the manifest's component list (names the component in later commands).
        pub index: u32 as U32,
        /// The component id.
        pub component_id: ComponentId as ComponentIdCodec,
        /// The slot the component goes to.
        pub slot: u64,
        /// Where its bytes come from.
        pub source: PayloadSource,
        /// Plaintext size (image-size), if the manifest says; a ciphertext is longer by its tag.
        pub size: Option<u64> as Opt<u64>,
        /// Expected plaintext digest, if the manifest checks one.
        pub digest: Option<DigestValue> as Opt<DigestValue>,
        /// The COSE encryption info when the payload is encrypted.
        pub encryption_info: Option<Vec<u8>> as Opt<Bytes>,
        /// Size the streamed bytes must have before decryption (the ciphertext), if the
        /// manifest checks it (a staging component's image-size).
        pub fetch_size: Option<u64> as Opt<u64>,
        /// Digest the streamed bytes must have before decryption, if the manifest checks it.
        pub fetch_digest: Option<DigestValue> as Opt<DigestValue>,
        /// The dm-verity root of the plaintext the manifest binds (parameter verity-root,
        /// 32 bytes): the component may stream (STREAM_UPDATE/FINAL).
        pub verity_root: Option<Vec<u8>> as Opt<Bytes>,
    }
}

wire_struct! {
    /// LOAD_MANIFEST response: the install plan.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Plan: "plan" {
        /// Digest of the manifest.
        pub manifest_digest: DigestValue,
        /// Its sequence number.
        pub sequence_number: u64,
        /// The target slot.
        pub slot: u64,
        /// The components to stream, approve and write.
        pub items: Vec<PlanItem> as List<PlanItem>,
    }
}

wire_struct! {
    /// PAYLOAD_FINAL response.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Approval: "approval" {
        /// The approval token (COSE_Sign1, see [`crate::token`]).
        pub token: Vec<u8> as Bytes,
        /// Plaintext digest computed by the TA.
        pub digest: DigestValue,
        /// Plaintext size.
        pub size: u64,
    }
}

wire_struct! {
    /// DECRYPT_FOR_INSTALL response: bytes written to parameter 3, and whether the component
    /// is done.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Decrypted: "decrypt reply" {
        /// Plaintext bytes in the data output.
        pub written: u32 as U32,
        /// Whether the last chunk was processed and the result checked.
        pub done: bool,
    }
}

/// Longest KEK key id PROVISION accepts.
pub const MAX_KID: usize = 64;

/// Longest sealed KEK PROVISION accepts (a 32-byte KEK sealed to a P-384 key is about 250
/// bytes).
pub const MAX_SEALED_KEK: usize = 512;

wire_struct! {
    /// The fleet KEK as PROVISION carries it: sealed to the device's key-agreement key, never
    /// in clear (docs/keys.md).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SealedKek: "[sealed-kek, kid]" {
        /// A tagged COSE_Encrypt of the KEK (16 or 32 bytes) with the ciphertext attached:
        /// ECDH-ES+AES-KW to the key-agreement key, AES-GCM (`suit-tool wrap-kek`).
        pub sealed: Vec<u8> as Bytes,
        /// The KEK's key id, as manifests name it (not secret).
        pub kid: Vec<u8> as Bytes,
    }
}

/// PROVISION request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provisioning {
    /// The fleet KEK, sealed to the device.
    pub kek: Option<SealedKek>,
    /// Vendor id override.
    pub vendor_id: Option<Uuid>,
    /// Class id override.
    pub class_id: Option<Uuid>,
    /// Device id.
    pub device_id: Option<Uuid>,
}

/// PROVISION's arguments: `[sealed-kek, kid] / null, vendor-id / null, class-id / null,
/// device-id / null`.
impl Flat for Provisioning {
    const ITEMS: usize = 4;
    fn write_flat(&self, w: &mut Writer) {
        Opt::<SealedKek>::write(&self.kek, w);
        for id in [&self.vendor_id, &self.class_id, &self.device_id] {
            Opt::<Uuid>::write(id, w);
        }
    }
    fn read_flat(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Provisioning {
            kek: Opt::<SealedKek>::read(r)?,
            vendor_id: Opt::<Uuid>::read(r)?,
            class_id: Opt::<Uuid>::read(r)?,
            device_id: Opt::<Uuid>::read(r)?,
        })
    }
}

/// A verifier's nonce: a byte string of at most [`MAX_NONCE`] bytes.
pub struct Nonce;

impl Codec<Vec<u8>> for Nonce {
    fn write(value: &Vec<u8>, w: &mut Writer) {
        w.bytes(value);
    }
    fn read(r: &mut Reader<'_>) -> Result<Vec<u8>> {
        let n = r.bytes()?;
        if n.len() > MAX_NONCE {
            return Err(Error::InvalidValue {
                context: r.context(),
                element: "nonce",
                reason: "at most 64 bytes",
            });
        }
        Ok(n.to_vec())
    }
}

/// COMMIT's tokens: at most [`MAX_ITEMS`] byte strings.
pub struct Tokens;

impl Codec<Vec<Vec<u8>>> for Tokens {
    fn write(value: &Vec<Vec<u8>>, w: &mut Writer) {
        List::<Bytes>::write(value, w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>> {
        let count = r.array()?;
        if count > MAX_ITEMS as u64 {
            return Err(Error::InvalidValue {
                context: "ABI request",
                element: "COMMIT tokens",
                reason: "more tokens than a plan can have items",
            });
        }
        let mut tokens = Vec::new();
        for _ in 0..count {
            tokens.push(Bytes::read(r)?);
        }
        Ok(tokens)
    }
}

/// A boxed value in `C`'s encoding.
pub struct Boxed<C>(core::marker::PhantomData<C>);

impl<T, C: Codec<T>> Codec<Box<T>> for Boxed<C> {
    fn write(value: &Box<T>, w: &mut Writer) {
        C::write(value, w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Box<T>> {
        C::read(r).map(Box::new)
    }
}

wire_struct! {
    /// What the normal world reports about the device at LOAD_MANIFEST, for the
    /// update-management conditions minimum-battery (26) and update-authorized (27). The REE
    /// is untrusted: these facts guard against accidents and carry the device's policy, they
    /// stop no attacker (root in Linux can report anything).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct DeviceFacts: "[battery-mwh / null, authorized]" {
        /// Battery charge in mWh (the unit of suit-parameter-minimum-battery); `None` for a
        /// device without battery, where minimum-battery passes.
        pub battery_mwh: Option<u64> as Opt<u64>,
        /// Whether the device's application authorises the update (update-authorized).
        pub authorized: bool,
    }
}

impl DeviceFacts {
    /// Largest encoding: array header, a 9-byte unsigned integer, a bool.
    pub const MAX_ENCODED: usize = 1 + 9 + 1;
}

impl Default for DeviceFacts {
    /// A device that says nothing: no battery, the update authorised — what every condition
    /// answered before the agent could report facts.
    fn default() -> Self {
        DeviceFacts {
            battery_mwh: None,
            authorized: true,
        }
    }
}
