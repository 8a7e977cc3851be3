//! The TA⇄host ABI (DESIGN.md §4), defined once for both sides.
//!
//! # Transport
//!
//! Every command is one GlobalPlatform invoke with the same four parameters:
//!
//! | index | type | content |
//! |---|---|---|
//! | 0 [`PARAM_REQUEST`] | memref input | the request: CBOR `[abi-version, args...]` |
//! | 1 [`PARAM_RESPONSE`] | memref output, at least [`MIN_RESPONSE_BUFFER`] bytes | the response (below) |
//! | 2 [`PARAM_DATA_IN`] | memref input or none | bulk input: envelope, payload or slot chunk |
//! | 3 [`PARAM_DATA_OUT`] | memref output or none | bulk output: plaintext of DECRYPT_FOR_INSTALL |
//!
//! [`CommandId::data_in`] / [`CommandId::data_out`] say which commands use 2 and 3. A response is
//! `[abi-version, 0, body]` on success or `[abi-version, 1, category-code, message-code, [* arg]]`
//! when the TA rejects the request; categories are [`Category::code`], message codes and their
//! arguments are described in [`rejection`] (the host renders the text). The TA answers every well-formed
//! invoke with TEE_SUCCESS and such a response; TEE error codes only report transport problems
//! (wrong parameter types, a response buffer below the minimum, out of memory), and those never
//! change any state. Either side refuses a response or request of another ABI version.
//!
//! Bulk chunks are at most the `max-chunk` the TA announces in GET_INFO (never more than
//! [`MAX_CHUNK_LIMIT`]; OP-TEE only guarantees [`GUARANTEED_CHUNK`] per shared buffer). Every
//! chunk carries its offset in the stream: 0 starts (or restarts) the stream, any other offset
//! must equal what the TA has received so far, so a retried or lost chunk is detected instead
//! of silently hashed twice or skipped.

use alloc::string::String;
use alloc::vec::Vec;

use crate::cbor::{Reader, Writer};
use crate::digest::DigestValue;
use crate::error::{Category, Error, Result};

/// The version of this ABI; both sides refuse another. Version 2: LOAD_MANIFEST takes a
/// verifier nonce, requests are size-capped per command ([`CommandId::max_request`]), component
/// ids are bounded ([`MAX_COMPONENT_ID`]), CONFIRM returns the floors of the confirmed
/// components, reports say "pending" after COMMIT. Version 3: LOAD_MANIFEST takes the
/// device's facts ([`DeviceFacts`]: battery, authorization), which its request array
/// always carries (null for none), so a version-2 peer miscounts the arguments. Version 4:
/// plan items carry the dm-verity root a manifest binds (`verity_root`), and
/// STREAM_UPDATE/STREAM_FINAL stream such a component in one pass (docs/streaming.md).
/// Version 5: UPDATE_ANCHORS (docs/anchors.md), and GET_INFO's reply ends with the signing
/// public key (tokens and reports), apart from the key-agreement key. Version 6: PROVISION
/// takes the fleet KEK sealed to the key-agreement key ([`SealedKek`]), never in clear.
/// Version 7: a rejection carries a message code and its arguments instead of text
/// ([`rejection`]; docs/abi.md).
pub const ABI_VERSION: u32 = 7;
/// Largest chunk any TA may announce.
pub const MAX_CHUNK_LIMIT: usize = 1 << 20;
/// What STREAM_UPDATE's data may exceed `max-chunk` by: room for the hash blocks of a
/// `max-chunk` chunk of payload (about one per 512 KiB and two per level), so that a stream
/// moves whole `max-chunk` chunks of payload per invoke.
pub const STREAM_HASH_ROOM: usize = 64 * 1024;
/// Shared-buffer size OP-TEE guarantees.
pub const GUARANTEED_CHUNK: usize = 512 * 1024;
/// Smallest response buffer (parameter 1) the TA accepts.
pub const MIN_RESPONSE_BUFFER: usize = 16 * 1024;
/// Extra room a DECRYPT_FOR_INSTALL output buffer needs beyond its input chunk (a streaming
/// AEAD decryptor may release bytes it held back from the previous chunk).
pub const DECRYPT_OUTPUT_SLACK: usize = 64;
/// Longest text or byte-string argument a rejection carries (longer ones are cut).
pub const MAX_MESSAGE: usize = 1024;
/// Largest encoded component id (CBOR `[* bstr]`) the TA accepts: keeps every reply that
/// names components (COMMIT, CONFIRM, tokens) within [`MIN_RESPONSE_BUFFER`].
pub const MAX_COMPONENT_ID: usize = 256;
/// Largest approval token a request may carry (a token with a [`MAX_COMPONENT_ID`] id and a
/// [`MAX_NONCE`] verifier nonce is about 600 bytes).
pub const MAX_TOKEN: usize = 1024;
/// Longest verifier nonce (LOAD_MANIFEST, REPORT).
pub const MAX_NONCE: usize = 64;
/// Most plan items (and so COMMIT tokens): the manifest's component limit.
pub const MAX_ITEMS: usize = crate::manifest::MAX_COMPONENTS;
/// The TA's default UUID, written once in `ta/uuid` (which `make ta`, ta/build.rs and the
/// scripts read too).
pub const DEFAULT_TA_UUID: &str = include_str!("../../../ta/uuid").trim_ascii();

/// Index of the request parameter.
pub const PARAM_REQUEST: usize = 0;
/// Index of the response parameter.
pub const PARAM_RESPONSE: usize = 1;
/// Index of the bulk input parameter.
pub const PARAM_DATA_IN: usize = 2;
/// Index of the bulk output parameter.
pub const PARAM_DATA_OUT: usize = 3;

/// GlobalPlatform return codes used on this ABI, and readable names for OP-TEE's codes.
pub mod tee {
    /// Success.
    pub const SUCCESS: u32 = 0;
    /// Generic error.
    pub const ERROR_GENERIC: u32 = 0xFFFF_0000;
    /// Access denied.
    pub const ERROR_ACCESS_DENIED: u32 = 0xFFFF_0001;
    /// An input is larger than the TA accepts.
    pub const ERROR_EXCESS_DATA: u32 = 0xFFFF_0004;
    /// Bad format.
    pub const ERROR_BAD_FORMAT: u32 = 0xFFFF_0005;
    /// Bad parameters (wrong parameter types).
    pub const ERROR_BAD_PARAMETERS: u32 = 0xFFFF_0006;
    /// Bad state.
    pub const ERROR_BAD_STATE: u32 = 0xFFFF_0007;
    /// Item not found (e.g. the TA is not installed).
    pub const ERROR_ITEM_NOT_FOUND: u32 = 0xFFFF_0008;
    /// Not supported.
    pub const ERROR_NOT_SUPPORTED: u32 = 0xFFFF_000A;
    /// Out of memory.
    pub const ERROR_OUT_OF_MEMORY: u32 = 0xFFFF_000C;
    /// Busy.
    pub const ERROR_BUSY: u32 = 0xFFFF_000D;
    /// Communication with the TEE failed.
    pub const ERROR_COMMUNICATION: u32 = 0xFFFF_000E;
    /// Security violation (e.g. TA signature).
    pub const ERROR_SECURITY: u32 = 0xFFFF_000F;
    /// A buffer is too small; its size field holds the size needed.
    pub const ERROR_SHORT_BUFFER: u32 = 0xFFFF_0010;
    /// The TA died (panic) or was killed.
    pub const ERROR_TARGET_DEAD: u32 = 0xFFFF_3024;
    /// Secure storage is out of space.
    pub const ERROR_STORAGE_NO_SPACE: u32 = 0xFFFF_3041;
    /// A persistent object is corrupt.
    pub const ERROR_CORRUPT_OBJECT: u32 = 0xF010_0001;
    /// Secure storage is not available (e.g. tee-supplicant not running).
    pub const ERROR_STORAGE_NOT_AVAILABLE: u32 = 0xF010_0003;

    /// A readable explanation of a TEE return code.
    pub fn message(code: u32) -> &'static str {
        match code {
            SUCCESS => "success",
            ERROR_GENERIC => "generic TEE error",
            ERROR_ACCESS_DENIED => "access denied",
            ERROR_EXCESS_DATA => {
                "an input buffer is larger than the TA accepts (see max-chunk and max-envelope \
                 in GET_INFO)"
            }
            ERROR_BAD_FORMAT => "bad format (is the TA file signed for this OP-TEE?)",
            ERROR_BAD_PARAMETERS => "bad parameters (parameter types do not match the ABI)",
            ERROR_BAD_STATE => "bad state",
            ERROR_ITEM_NOT_FOUND => {
                "item not found (is the TA installed in /lib/optee_armtz and tee-supplicant running?)"
            }
            ERROR_NOT_SUPPORTED => "not supported",
            ERROR_OUT_OF_MEMORY => "the TA ran out of memory",
            ERROR_BUSY => "the TEE is busy",
            ERROR_COMMUNICATION => "communication with the TEE failed",
            ERROR_SECURITY => "security violation (TA signature or memory protection)",
            ERROR_SHORT_BUFFER => "a buffer is too small",
            ERROR_TARGET_DEAD => "the TA died (panic or abort); see the secure console",
            ERROR_STORAGE_NO_SPACE => "secure storage is full",
            ERROR_CORRUPT_OBJECT => "a secure storage object is corrupt",
            ERROR_STORAGE_NOT_AVAILABLE => {
                "secure storage is not available (is tee-supplicant running?)"
            }
            _ => "unknown TEE error",
        }
    }
}

/// GlobalPlatform login methods, as the TA sees them in `gpd.client.identity`.
pub mod login {
    /// No identity (TEEC_LOGIN_PUBLIC); the UUID is nil.
    pub const PUBLIC: u32 = 0;
    /// A Linux user: the kernel derives the UUID from the caller's effective uid.
    pub const USER: u32 = 1;
    /// Another TA; the UUID is that TA's.
    pub const TRUSTED_APP: u32 = 0xF000_0000;
    /// The Linux kernel's namespace for client UUIDs (drivers/tee/tee_core.c
    /// `tee_client_uuid_ns`): a REE user's UUID is UUIDv5(this, `"uid=<hex uid>"`), a group's
    /// UUIDv5(this, `"gid=<hex gid>"`).
    pub const LINUX_CLIENT_NAMESPACE: [u8; 16] = [
        0x58, 0xac, 0x9c, 0xa0, 0x20, 0x86, 0x46, 0x83, 0xa1, 0xb8, 0xec, 0x4b, 0xc0, 0x8e, 0x01,
        0xb6,
    ];
}

pub mod rejection;
mod table;
mod types;

use crate::codec::{Bytes, Codec, List, Opt, Spread, U32};
use crate::component::ComponentId;
pub use rejection::{Arg, Refusal};
pub use types::{
    Algorithms, Approval, ChunkLimit, ComponentIdCodec, Decrypted, DeviceFacts, EnvelopeLimit,
    FloorCodec, Floors, Info, InstallState, InstalledComponent, LastOutcome, PayloadSource,
    PendingInstall, Plan, PlanItem, Provisioning, SealedKek, StorageKind, MAX_KID, MAX_SEALED_KEK,
};
use types::{Boxed, Nonce, Tokens};

/// Room in a request for the array header, the version and integer arguments (9 bytes each).
const FIXED: usize = 64;
/// The response buffer for replies that list plan items or floors.
const LARGE_RESPONSE: usize = 4 * MIN_RESPONSE_BUFFER;

/// What a reply body is: which [`Reply`] variant carries it and how it is read.
pub trait ReplyBody: Sized {
    /// Wraps the body.
    fn into_reply(self) -> Reply;
    /// The body, if `reply` carries this type.
    fn from_reply(reply: Reply) -> Option<Self>;
    /// Reads the body into its [`Reply`].
    fn read_reply(r: &mut Reader<'_>) -> Result<Reply>;
}

crate::abi_replies! {
    /// GET_INFO.
    Info(alloc::boxed::Box<Info> as Boxed<Info>),
    /// LOAD_MANIFEST.
    Plan(Plan as Plan),
    /// PAYLOAD_FINAL.
    Approval(Approval as Approval),
    /// DECRYPT_FOR_INSTALL.
    Decrypted(Decrypted as Decrypted),
    /// COMMIT: what was recorded.
    Committed(PendingInstall as PendingInstall),
    /// CONFIRM: the floors of the confirmed components, as raised.
    Confirmed(Floors as List<FloorCodec>),
    /// REPORT: the signed SUIT report.
    Report(Vec<u8> as Bytes),
    /// BOOT_VERIFY: what the slot may boot.
    Boot(crate::boot::BootRecord as crate::boot::BootRecord),
}

crate::abi_table! {
    /// ABI version, algorithms, identity, device key, floors, install state, storage kind.
    GetInfo = 1, "GET_INFO", fn get_info
        -> alloc::boxed::Box<Info>,
        request_cap: FIXED, response_cap: LARGE_RESPONSE;
    /// Authenticate and plan an envelope (data in: the envelope).
    LoadManifest = 2, "LOAD_MANIFEST", fn load_manifest {
            /// The slot to install into.
            target_slot: u64,
            /// A verifier's nonce (at most [`MAX_NONCE`] bytes), carried into every approval
            /// token of this update.
            nonce: Option<Vec<u8>> as Opt<Nonce>,
            /// What the normal world reports about the device for minimum-battery and
            /// update-authorized; `None`: nothing ([`DeviceFacts::default`]).
            facts: Option<DeviceFacts> as Opt<DeviceFacts>,
        } [in envelope]
        -> Plan,
        request_cap: FIXED + MAX_NONCE + DeviceFacts::MAX_ENCODED, response_cap: LARGE_RESPONSE;
    /// Stream a chunk of one component's payload (data in: the chunk).
    PayloadUpdate = 3, "PAYLOAD_UPDATE", fn payload_update {
            /// Plan item index.
            component: u32 as U32,
            /// Offset of the chunk in the component's bytes: 0 (re)starts, anything else must
            /// be what the TA has received so far.
            offset: u64,
        } [in chunk]
        -> (),
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
    /// End a component's payload: check it and return an approval token.
    PayloadFinal = 4, "PAYLOAD_FINAL", fn payload_final {
            /// Plan item index.
            component: u32 as U32,
        }
        -> Approval,
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
    /// Decrypt a chunk of an approved encrypted component (data in: ciphertext, out:
    /// plaintext).
    DecryptForInstall = 5, "DECRYPT_FOR_INSTALL", fn decrypt_for_install {
            /// Plan item index.
            component: u32 as U32,
            /// The approval token of the component.
            token: Vec<u8> as Bytes,
            /// Offset of the chunk: 0 (re)starts, else what the TA has received so far.
            offset: u64,
            /// Whether this is the last chunk.
            last: bool,
        } [in ciphertext] [out plaintext]
        -> Decrypted,
        request_cap: FIXED + MAX_TOKEN, response_cap: MIN_RESPONSE_BUFFER;
    /// Re-run the manifest over the computed digests and record the pending install.
    Commit = 6, "COMMIT", fn commit {
            /// Tokens, one per plan item.
            tokens: Vec<Vec<u8>> as Tokens,
        }
        -> PendingInstall,
        request_cap: FIXED + MAX_ITEMS * (MAX_TOKEN + 3), response_cap: MIN_RESPONSE_BUFFER;
    /// Stream a chunk of a running slot's component (data in: the chunk).
    ConfirmUpdate = 7, "CONFIRM_UPDATE", fn confirm_update {
            /// Index in the pending install's component list.
            component: u32 as U32,
            /// Offset of the chunk: 0 (re)starts, else what the TA has received so far.
            offset: u64,
        } [in chunk]
        -> (),
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
    /// Check the streamed slot content against the pending install and raise the floors.
    Confirm = 8, "CONFIRM", fn confirm
        -> Floors,
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
    /// Drop the pending install; floors unchanged.
    Rollback = 9, "ROLLBACK", fn rollback
        -> (),
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
    /// Drop this session's update in progress.
    Abort = 10, "ABORT", fn abort
        -> (),
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
    /// Factory provisioning, once: fleet KEK (sealed to the device) and identity overrides.
    Provision = 11, "PROVISION", fn provision (provisioning: Provisioning as Spread)
        -> (),
        // The sealed KEK, its kid, three UUIDs.
        request_cap: FIXED + MAX_SEALED_KEK + MAX_KID + 3 * 17, response_cap: MIN_RESPONSE_BUFFER;
    /// A SUIT report of this session's last update attempt, signed with the device key.
    Report = 12, "REPORT", fn report {
            /// Freshness value from the agent (e.g. from the report server), at most 64 bytes.
            nonce: Option<Vec<u8>> as Opt<Nonce>,
        }
        -> Vec<u8>,
        request_cap: FIXED + MAX_NONCE, response_cap: MIN_RESPONSE_BUFFER;
    /// What the TA approved to boot from a slot (verified boot), or a refusal.
    BootVerify = 13, "BOOT_VERIFY", fn boot_verify {
            /// The slot the boot stage is about to mount.
            slot: u64,
        }
        -> crate::boot::BootRecord,
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
    /// Stream a chunk of a component whose manifest binds a dm-verity root, in one pass
    /// (docs/streaming.md). Data in: `hashes` bytes of hash blocks (those the chunk's data
    /// blocks need, in [`crate::verity::PathCursor`] order), then the chunk of the payload as
    /// fetched; data out (at least chunk + 4096 + [`DECRYPT_OUTPUT_SLACK`] bytes): the
    /// plaintext of the blocks that matched the tree, nothing else.
    StreamUpdate = 14, "STREAM_UPDATE", fn stream_update {
            /// Plan item index.
            component: u32 as U32,
            /// Offset of the chunk in the fetched payload: what the TA has received so far,
            /// or a block boundary to (re)start at (0, or a resume point).
            offset: u64,
            /// Length of the hash-block prefix of the data.
            hashes: u32 as U32,
        } [in data] [out plaintext]
        -> Decrypted,
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
    /// End a one-pass stream: every block checked, the AEAD tag of a whole encrypted
    /// stream; returns the approval token (the component counts as written for COMMIT).
    StreamFinal = 15, "STREAM_FINAL", fn stream_final {
            /// Plan item index.
            component: u32 as U32,
        }
        -> Approval,
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
    /// Apply a signed trust-anchor update (data in: an envelope for the component
    /// [`crate::anchors::COMPONENT`], at most `max-envelope` bytes), authenticated under the
    /// anchor set in force.
    UpdateAnchors = 16, "UPDATE_ANCHORS", fn update_anchors [in envelope]
        -> (),
        request_cap: FIXED, response_cap: MIN_RESPONSE_BUFFER;
}

/// A rejection as the host reads it: the category, the message code and the message rendered
/// from the code's template ([`rejection`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// The category.
    pub category: Category,
    /// The message's code ([`rejection::code`]).
    pub code: u16,
    /// The message for the user.
    pub message: String,
}

/// Encodes a response: `[version, 0, body]`, or `[version, 1, category, code, [* arg]]` for a
/// rejection.
pub fn encode_response(result: &core::result::Result<Reply, Refusal>) -> Vec<u8> {
    let mut w = Writer::new();
    match result {
        Ok(reply) => {
            w.array(3).u64(ABI_VERSION.into()).u64(0);
            reply.write(&mut w);
        }
        Err(refusal) => {
            w.array(5).u64(ABI_VERSION.into()).u64(1);
            refusal.write(&mut w);
        }
    }
    w.into_bytes()
}

/// Decodes the response to `command`: `Ok(Ok(reply))`, `Ok(Err(rejection))`, or `Err` when
/// the bytes are not a response of this ABI version.
pub fn decode_response(
    command: CommandId,
    bytes: &[u8],
) -> Result<core::result::Result<Reply, Rejection>> {
    Reader::decode_exact(bytes, "ABI response", |r| {
        let n = r.array()?;
        if n == 0 {
            return Err(missing("ABI response", "abi-version"));
        }
        check_version(r.u64()?, "TA")?;
        match (r.u64()?, n) {
            (0, 3) => read_reply(command, r).map(Ok),
            (1, 5) => Refusal::read(r).map(Err),
            _ => Err(Error::InvalidValue {
                context: "ABI response",
                element: "status",
                reason: "neither [version, 0, body] nor [version, 1, category, code, args]",
            }),
        }
    })
}

fn check_version(version: u64, peer: &'static str) -> Result<()> {
    if version == u64::from(ABI_VERSION) {
        Ok(())
    } else {
        Err(Error::Unsupported(alloc::format!(
            "ABI version mismatch: the {peer} speaks version {version}, this side speaks \
             version {ABI_VERSION}; install a matching TA and agent"
        )))
    }
}

fn missing(context: &'static str, element: &'static str) -> Error {
    Error::MissingElement { context, element }
}

/// Writes a digest as `[alg, bytes]`.
pub fn write_digest(w: &mut Writer, d: &DigestValue) {
    <DigestValue as Codec<DigestValue>>::write(d, w);
}

/// Reads a digest `[alg, bytes]`.
pub fn read_digest(r: &mut Reader<'_>) -> Result<DigestValue> {
    <DigestValue as Codec<DigestValue>>::read(r)
}

/// Writes a component id `[* bstr]`.
pub fn write_component_id(w: &mut Writer, id: &ComponentId) {
    <ComponentIdCodec as Codec<ComponentId>>::write(id, w);
}

/// Reads a component id `[* bstr]`.
pub fn read_component_id(r: &mut Reader<'_>) -> Result<ComponentId> {
    <ComponentIdCodec as Codec<ComponentId>>::read(r)
}

#[cfg(test)]
mod tests;
