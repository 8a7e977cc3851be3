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
//! `[abi-version, 0, body]` on success or `[abi-version, 1, category-code, message]` when the TA
//! rejects the request; categories are [`Category::code`]. The TA answers every well-formed
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
use crate::digest::{DigestAlg, DigestValue};
use crate::error::{Category, Error, Result, Uuid};

/// The version of this ABI; both sides refuse another. Version 2: LOAD_MANIFEST takes a
/// verifier nonce, requests are size-capped per command ([`CommandId::max_request`]), component
/// ids are bounded ([`MAX_COMPONENT_ID`]), CONFIRM returns the floors of the confirmed
/// components, reports say "pending" after COMMIT.
pub const ABI_VERSION: u32 = 2;
/// Largest chunk any TA may announce.
pub const MAX_CHUNK_LIMIT: usize = 1 << 20;
/// Shared-buffer size OP-TEE guarantees.
pub const GUARANTEED_CHUNK: usize = 512 * 1024;
/// Smallest response buffer (parameter 1) the TA accepts.
pub const MIN_RESPONSE_BUFFER: usize = 16 * 1024;
/// Extra room a DECRYPT_FOR_INSTALL output buffer needs beyond its input chunk (a streaming
/// AEAD decryptor may release bytes it held back from the previous chunk).
pub const DECRYPT_OUTPUT_SLACK: usize = 64;
/// Longest message an error response carries.
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
/// The TA's default UUID (ta/ta.mk `TA_UUID`).
pub const DEFAULT_TA_UUID: &str = "5f8b4d1e-2c3a-4b7e-9d6f-1a2b3c4d5e6f";

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

/// A command of the ABI (the GlobalPlatform command id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CommandId {
    /// ABI version, algorithms, identity, device key, floors, install state, storage kind.
    GetInfo = 1,
    /// Authenticate and plan an envelope (data in: the envelope).
    LoadManifest = 2,
    /// Stream a chunk of one component's payload (data in: the chunk).
    PayloadUpdate = 3,
    /// End a component's payload: check it and return an approval token.
    PayloadFinal = 4,
    /// Decrypt a chunk of an approved encrypted component (data in: ciphertext, out: plaintext).
    DecryptForInstall = 5,
    /// Re-run the manifest over the computed digests and record the pending install.
    Commit = 6,
    /// Stream a chunk of a running slot's component (data in: the chunk).
    ConfirmUpdate = 7,
    /// Check the streamed slot content against the pending install and raise the floors.
    Confirm = 8,
    /// Drop the pending install; floors unchanged.
    Rollback = 9,
    /// Drop this session's update in progress.
    Abort = 10,
    /// Factory provisioning, once: fleet KEK and identity overrides.
    Provision = 11,
    /// A SUIT report of this session's last update attempt, signed with the device key.
    Report = 12,
    /// What the TA approved to boot from a slot (verified boot), or a refusal.
    BootVerify = 13,
}

impl CommandId {
    /// Every command.
    pub const ALL: [CommandId; 13] = [
        CommandId::GetInfo,
        CommandId::LoadManifest,
        CommandId::PayloadUpdate,
        CommandId::PayloadFinal,
        CommandId::DecryptForInstall,
        CommandId::Commit,
        CommandId::ConfirmUpdate,
        CommandId::Confirm,
        CommandId::Rollback,
        CommandId::Abort,
        CommandId::Provision,
        CommandId::Report,
        CommandId::BootVerify,
    ];

    /// From the GlobalPlatform command id.
    pub fn from_u32(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u32 == id)
    }

    /// Whether the command takes bulk input in parameter 2.
    pub fn data_in(self) -> bool {
        matches!(
            self,
            CommandId::LoadManifest
                | CommandId::PayloadUpdate
                | CommandId::DecryptForInstall
                | CommandId::ConfirmUpdate
        )
    }

    /// Whether the command writes bulk output to parameter 3.
    pub fn data_out(self) -> bool {
        self == CommandId::DecryptForInstall
    }

    /// Largest request (parameter 0) the TA copies for this command; anything larger is
    /// refused before it is copied or parsed (TEE_ERROR_EXCESS_DATA).
    pub fn max_request(self) -> usize {
        // Room for the array header, the version and integer arguments (9 bytes each).
        const FIXED: usize = 64;
        match self {
            CommandId::GetInfo
            | CommandId::Confirm
            | CommandId::Rollback
            | CommandId::Abort
            | CommandId::PayloadUpdate
            | CommandId::PayloadFinal
            | CommandId::ConfirmUpdate
            | CommandId::BootVerify => FIXED,
            CommandId::LoadManifest | CommandId::Report => FIXED + MAX_NONCE,
            CommandId::DecryptForInstall => FIXED + MAX_TOKEN,
            CommandId::Commit => FIXED + MAX_ITEMS * (MAX_TOKEN + 3),
            // KEK (at most 32 bytes), its kid, three UUIDs.
            CommandId::Provision => FIXED + 32 + MAX_KID + 3 * 17,
        }
    }

    /// Upper-case name as in DESIGN.md.
    pub fn name(self) -> &'static str {
        match self {
            CommandId::GetInfo => "GET_INFO",
            CommandId::LoadManifest => "LOAD_MANIFEST",
            CommandId::PayloadUpdate => "PAYLOAD_UPDATE",
            CommandId::PayloadFinal => "PAYLOAD_FINAL",
            CommandId::DecryptForInstall => "DECRYPT_FOR_INSTALL",
            CommandId::Commit => "COMMIT",
            CommandId::ConfirmUpdate => "CONFIRM_UPDATE",
            CommandId::Confirm => "CONFIRM",
            CommandId::Rollback => "ROLLBACK",
            CommandId::Abort => "ABORT",
            CommandId::Provision => "PROVISION",
            CommandId::Report => "REPORT",
            CommandId::BootVerify => "BOOT_VERIFY",
        }
    }
}

/// Secure storage backing the TA's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// OP-TEE REE-FS: encrypted and authenticated, but an old copy can be restored.
    ReeFs,
    /// OP-TEE RPMB: replay-protected.
    Rpmb,
    /// Files of the host simulator: no protection at all.
    Simulator,
}

impl StorageKind {
    fn code(self) -> u64 {
        match self {
            StorageKind::ReeFs => 0,
            StorageKind::Rpmb => 1,
            StorageKind::Simulator => 2,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        [
            StorageKind::ReeFs,
            StorageKind::Rpmb,
            StorageKind::Simulator,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }

    /// Readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::ReeFs => "REE-FS (no rollback protection of its own)",
            StorageKind::Rpmb => "RPMB (replay-protected)",
            StorageKind::Simulator => "simulator files (NOT a TEE, no protection)",
        }
    }
}

/// A component id: a list of byte strings.
pub type ComponentIdBytes = Vec<Vec<u8>>;

/// One component of a recorded install: what its slot must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledComponent {
    /// The component id.
    pub component_id: ComponentIdBytes,
    /// Digest of the plaintext image.
    pub digest: DigestValue,
    /// Size of the plaintext image.
    pub size: u64,
}

/// An install recorded by COMMIT and not yet confirmed or rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInstall {
    /// The slot the components were written to.
    pub slot: u64,
    /// The manifest's sequence number (the floor after CONFIRM).
    pub sequence_number: u64,
    /// Digest of the manifest (authentication wrapper digest).
    pub manifest_digest: DigestValue,
    /// The components written.
    pub components: Vec<InstalledComponent>,
}

/// How the last install ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastOutcome {
    /// No install has ended yet.
    None,
    /// Confirmed; floors raised.
    Confirmed,
    /// Rolled back; floors unchanged.
    RolledBack,
}

/// Persistent install state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallState {
    /// No install pending.
    Idle,
    /// Committed and awaiting the trial boot's CONFIRM or a ROLLBACK.
    Trial(PendingInstall),
}

/// Algorithms the TA implements, as COSE ids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Algorithms {
    /// Digests.
    pub digest: Vec<i64>,
    /// Manifest signatures.
    pub signature: Vec<i64>,
    /// Content encryption.
    pub content_encryption: Vec<i64>,
    /// Key distribution.
    pub key_distribution: Vec<i64>,
}

/// GET_INFO response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The TA's ABI version.
    pub abi_version: u32,
    /// Largest bulk chunk the TA accepts.
    pub max_chunk: u32,
    /// Largest envelope LOAD_MANIFEST accepts.
    pub max_envelope: u32,
    /// Supported algorithms.
    pub algorithms: Algorithms,
    /// Vendor id.
    pub vendor_id: Uuid,
    /// Class id.
    pub class_id: Uuid,
    /// Device id, if provisioned.
    pub device_id: Option<Uuid>,
    /// The device's P-384 public key, SEC1 uncompressed.
    pub device_public_key: Vec<u8>,
    /// Secure storage in force.
    pub storage: StorageKind,
    /// Whether PROVISION has run (and is now locked).
    pub provisioned: bool,
    /// Whether a fleet KEK is present.
    pub kek_present: bool,
    /// Anti-rollback floors per component.
    pub floors: Vec<(ComponentIdBytes, u64)>,
    /// Install state.
    pub install: InstallState,
    /// How the last install ended.
    pub last_outcome: LastOutcome,
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

/// One component the install plan writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    /// Index in the manifest's component list (names the component in later commands).
    pub index: u32,
    /// The component id.
    pub component_id: ComponentIdBytes,
    /// The slot the component goes to.
    pub slot: u64,
    /// Where its bytes come from.
    pub source: PayloadSource,
    /// Plaintext size (image-size), if the manifest says; a ciphertext is longer by its tag.
    pub size: Option<u64>,
    /// Expected plaintext digest, if the manifest checks one.
    pub digest: Option<DigestValue>,
    /// The COSE encryption info when the payload is encrypted.
    pub encryption_info: Option<Vec<u8>>,
    /// Size the streamed bytes must have before decryption (the ciphertext), if the manifest
    /// checks it (a staging component's image-size).
    pub fetch_size: Option<u64>,
    /// Digest the streamed bytes must have before decryption, if the manifest checks it.
    pub fetch_digest: Option<DigestValue>,
}

/// LOAD_MANIFEST response: the install plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Digest of the manifest.
    pub manifest_digest: DigestValue,
    /// Its sequence number.
    pub sequence_number: u64,
    /// The target slot.
    pub slot: u64,
    /// The components to stream, approve and write.
    pub items: Vec<PlanItem>,
}

/// PAYLOAD_FINAL response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The approval token (COSE_Sign1, see [`crate::token`]).
    pub token: Vec<u8>,
    /// Plaintext digest computed by the TA.
    pub digest: DigestValue,
    /// Plaintext size.
    pub size: u64,
}

/// Longest KEK key id PROVISION accepts.
pub const MAX_KID: usize = 64;

/// PROVISION request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provisioning {
    /// Fleet KEK (16 or 32 bytes) and its key id.
    pub kek: Option<(Vec<u8>, Vec<u8>)>,
    /// Vendor id override.
    pub vendor_id: Option<Uuid>,
    /// Class id override.
    pub class_id: Option<Uuid>,
    /// Device id.
    pub device_id: Option<Uuid>,
}

impl Drop for Provisioning {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some((key, _)) = &mut self.kek {
            key.zeroize();
        }
    }
}

/// A request; the command id travels beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// GET_INFO.
    GetInfo,
    /// LOAD_MANIFEST for the given (inactive) slot.
    LoadManifest {
        /// The slot to install into.
        target_slot: u64,
        /// A verifier's nonce (at most [`MAX_NONCE`] bytes), carried into every approval
        /// token of this update.
        nonce: Option<Vec<u8>>,
    },
    /// PAYLOAD_UPDATE for a plan item.
    PayloadUpdate {
        /// Plan item index.
        component: u32,
        /// Offset of the chunk in the component's bytes: 0 (re)starts, anything else must be
        /// what the TA has received so far.
        offset: u64,
    },
    /// PAYLOAD_FINAL for a plan item.
    PayloadFinal {
        /// Plan item index.
        component: u32,
    },
    /// DECRYPT_FOR_INSTALL chunk.
    DecryptForInstall {
        /// Plan item index.
        component: u32,
        /// The approval token of the component.
        token: Vec<u8>,
        /// Offset of the chunk: 0 (re)starts, else what the TA has received so far.
        offset: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// COMMIT with the approval token of every plan item.
    Commit {
        /// Tokens, one per plan item.
        tokens: Vec<Vec<u8>>,
    },
    /// CONFIRM_UPDATE chunk of a pending component.
    ConfirmUpdate {
        /// Index in the pending install's component list.
        component: u32,
        /// Offset of the chunk: 0 (re)starts, else what the TA has received so far.
        offset: u64,
    },
    /// CONFIRM.
    Confirm,
    /// ROLLBACK.
    Rollback,
    /// ABORT.
    Abort,
    /// PROVISION.
    Provision(Provisioning),
    /// REPORT, with a nonce to include.
    Report {
        /// Freshness value from the agent (e.g. from the report server), at most 64 bytes.
        nonce: Option<Vec<u8>>,
    },
    /// BOOT_VERIFY of a slot (component-slot number).
    BootVerify {
        /// The slot the boot stage is about to mount.
        slot: u64,
    },
}

impl Request {
    /// The command this request belongs to.
    pub fn command(&self) -> CommandId {
        match self {
            Request::GetInfo => CommandId::GetInfo,
            Request::LoadManifest { .. } => CommandId::LoadManifest,
            Request::PayloadUpdate { .. } => CommandId::PayloadUpdate,
            Request::PayloadFinal { .. } => CommandId::PayloadFinal,
            Request::DecryptForInstall { .. } => CommandId::DecryptForInstall,
            Request::Commit { .. } => CommandId::Commit,
            Request::ConfirmUpdate { .. } => CommandId::ConfirmUpdate,
            Request::Confirm => CommandId::Confirm,
            Request::Rollback => CommandId::Rollback,
            Request::Abort => CommandId::Abort,
            Request::Provision(_) => CommandId::Provision,
            Request::Report { .. } => CommandId::Report,
            Request::BootVerify { .. } => CommandId::BootVerify,
        }
    }

    /// Encodes `[ABI_VERSION, args...]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Request::GetInfo | Request::Confirm | Request::Rollback | Request::Abort => {
                w.array(1).u64(ABI_VERSION.into());
            }
            Request::BootVerify { slot } => {
                w.array(2).u64(ABI_VERSION.into()).u64(*slot);
            }
            Request::LoadManifest { target_slot, nonce } => {
                w.array(3).u64(ABI_VERSION.into()).u64(*target_slot);
                match nonce {
                    Some(n) => w.bytes(n),
                    None => w.null(),
                };
            }
            Request::PayloadFinal { component } => {
                w.array(2).u64(ABI_VERSION.into()).u64((*component).into());
            }
            Request::PayloadUpdate { component, offset }
            | Request::ConfirmUpdate { component, offset } => {
                w.array(3)
                    .u64(ABI_VERSION.into())
                    .u64((*component).into())
                    .u64(*offset);
            }
            Request::DecryptForInstall {
                component,
                token,
                offset,
                last,
            } => {
                w.array(5)
                    .u64(ABI_VERSION.into())
                    .u64((*component).into())
                    .bytes(token)
                    .u64(*offset)
                    .bool(*last);
            }
            Request::Commit { tokens } => {
                w.array(2).u64(ABI_VERSION.into()).array(tokens.len());
                for t in tokens {
                    w.bytes(t);
                }
            }
            Request::Report { nonce } => {
                w.array(2).u64(ABI_VERSION.into());
                match nonce {
                    Some(n) => w.bytes(n),
                    None => w.null(),
                };
            }
            Request::Provision(p) => {
                w.array(5).u64(ABI_VERSION.into());
                match &p.kek {
                    Some((key, kid)) => w.array(2).bytes(key).bytes(kid),
                    None => w.null(),
                };
                for id in [&p.vendor_id, &p.class_id, &p.device_id] {
                    opt_uuid(&mut w, id);
                }
            }
        }
        w.into_bytes()
    }

    /// Decodes the request of `command`; refuses another ABI version with a clear message.
    pub fn decode(command: CommandId, bytes: &[u8]) -> Result<Self> {
        Reader::decode_exact(bytes, "ABI request", |r| {
            let n = r.array()?;
            if n == 0 {
                return Err(missing("ABI request", "abi-version"));
            }
            check_version(r.u64()?, "host")?;
            let expected = match command {
                CommandId::GetInfo
                | CommandId::Confirm
                | CommandId::Rollback
                | CommandId::Abort => 1,
                CommandId::PayloadFinal
                | CommandId::Commit
                | CommandId::Report
                | CommandId::BootVerify => 2,
                CommandId::LoadManifest | CommandId::PayloadUpdate | CommandId::ConfirmUpdate => 3,
                CommandId::DecryptForInstall => 5,
                CommandId::Provision => 5,
            };
            if n != expected {
                return Err(Error::InvalidValue {
                    context: "ABI request",
                    element: command.name(),
                    reason: "wrong number of arguments",
                });
            }
            Ok(match command {
                CommandId::GetInfo => Request::GetInfo,
                CommandId::Confirm => Request::Confirm,
                CommandId::Rollback => Request::Rollback,
                CommandId::Abort => Request::Abort,
                CommandId::LoadManifest => Request::LoadManifest {
                    target_slot: r.u64()?,
                    nonce: read_nonce(r, "LOAD_MANIFEST nonce")?,
                },
                CommandId::BootVerify => Request::BootVerify { slot: r.u64()? },
                CommandId::PayloadUpdate => Request::PayloadUpdate {
                    component: u32_of(r)?,
                    offset: r.u64()?,
                },
                CommandId::PayloadFinal => Request::PayloadFinal {
                    component: u32_of(r)?,
                },
                CommandId::ConfirmUpdate => Request::ConfirmUpdate {
                    component: u32_of(r)?,
                    offset: r.u64()?,
                },
                CommandId::DecryptForInstall => Request::DecryptForInstall {
                    component: u32_of(r)?,
                    token: r.bytes()?.to_vec(),
                    offset: r.u64()?,
                    last: r.bool()?,
                },
                CommandId::Commit => {
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
                        tokens.push(r.bytes()?.to_vec());
                    }
                    Request::Commit { tokens }
                }
                CommandId::Report => Request::Report {
                    nonce: read_nonce(r, "REPORT nonce")?,
                },
                CommandId::Provision => {
                    let kek = if r.is(minicbor::data::Type::Null) {
                        r.null()?;
                        None
                    } else {
                        r.array_of(2, "[kek, kid]")?;
                        Some((r.bytes()?.to_vec(), r.bytes()?.to_vec()))
                    };
                    Request::Provision(Provisioning {
                        kek,
                        vendor_id: read_opt_uuid(r)?,
                        class_id: read_opt_uuid(r)?,
                        device_id: read_opt_uuid(r)?,
                    })
                }
            })
        })
    }
}

/// A rejection as it travels on the ABI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// The category.
    pub category: Category,
    /// The message for the user.
    pub message: String,
}

impl Rejection {
    /// From a core error.
    pub fn from_error(e: &Error) -> Self {
        Rejection {
            category: e.category(),
            message: alloc::format!("{e}"),
        }
    }
}

/// A successful response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// GET_INFO.
    Info(alloc::boxed::Box<Info>),
    /// LOAD_MANIFEST.
    Plan(Plan),
    /// PAYLOAD_FINAL.
    Approval(Approval),
    /// DECRYPT_FOR_INSTALL: bytes written to parameter 3, and whether the component is done.
    Decrypted {
        /// Plaintext bytes in the data output.
        written: u32,
        /// Whether the last chunk was processed and the result checked.
        done: bool,
    },
    /// COMMIT: what was recorded.
    Committed(PendingInstall),
    /// CONFIRM: the floors of the confirmed components, as raised.
    Confirmed(Vec<(ComponentIdBytes, u64)>),
    /// REPORT: the signed SUIT report.
    Report(Vec<u8>),
    /// BOOT_VERIFY: what the slot may boot.
    Boot(crate::boot::BootRecord),
    /// Commands without a body (PAYLOAD_UPDATE, CONFIRM_UPDATE, ROLLBACK, ABORT, PROVISION).
    Done,
}

/// Encodes a response.
pub fn encode_response(result: &core::result::Result<Reply, Rejection>) -> Vec<u8> {
    let mut w = Writer::new();
    match result {
        Ok(reply) => {
            w.array(3).u64(ABI_VERSION.into()).u64(0);
            encode_reply(&mut w, reply);
        }
        Err(rejection) => {
            let mut message = rejection.message.as_str();
            if message.len() > MAX_MESSAGE {
                let mut end = MAX_MESSAGE;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message = &message[..end];
            }
            w.array(4)
                .u64(ABI_VERSION.into())
                .u64(1)
                .u64(rejection.category.code().into())
                .str(message);
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
            (0, 3) => decode_reply(command, r).map(Ok),
            (1, 4) => {
                let code = r.u64()?;
                let category = u8::try_from(code)
                    .ok()
                    .and_then(Category::from_code)
                    .ok_or(Error::InvalidValue {
                        context: "ABI response",
                        element: "category",
                        reason: "unknown category code",
                    })?;
                Ok(Err(Rejection {
                    category,
                    message: String::from(r.str()?),
                }))
            }
            _ => Err(Error::InvalidValue {
                context: "ABI response",
                element: "status",
                reason: "neither [version, 0, body] nor [version, 1, category, message]",
            }),
        }
    })
}

fn read_nonce(r: &mut Reader<'_>, element: &'static str) -> Result<Option<Vec<u8>>> {
    opt_null(r, |r| {
        let n = r.bytes()?;
        if n.len() > MAX_NONCE {
            return Err(Error::InvalidValue {
                context: "ABI request",
                element,
                reason: "at most 64 bytes",
            });
        }
        Ok(n.to_vec())
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

fn u32_of(r: &mut Reader<'_>) -> Result<u32> {
    let v = r.u64()?;
    u32::try_from(v).map_err(|_| Error::InvalidValue {
        context: r.context(),
        element: "index",
        reason: "out of range",
    })
}

fn opt_uuid(w: &mut Writer, id: &Option<Uuid>) {
    match id {
        Some(u) => w.bytes(&u.0),
        None => w.null(),
    };
}

fn read_uuid(r: &mut Reader<'_>) -> Result<Uuid> {
    <[u8; 16]>::try_from(r.bytes()?)
        .map(Uuid)
        .map_err(|_| Error::InvalidValue {
            context: r.context(),
            element: "UUID",
            reason: "must be 16 bytes",
        })
}

fn read_opt_uuid(r: &mut Reader<'_>) -> Result<Option<Uuid>> {
    if r.is(minicbor::data::Type::Null) {
        r.null()?;
        Ok(None)
    } else {
        read_uuid(r).map(Some)
    }
}

fn opt_null<T>(
    r: &mut Reader<'_>,
    f: impl FnOnce(&mut Reader<'_>) -> Result<T>,
) -> Result<Option<T>> {
    if r.is(minicbor::data::Type::Null) {
        r.null()?;
        Ok(None)
    } else {
        f(r).map(Some)
    }
}

/// Writes a digest as `[alg, bytes]`.
pub fn write_digest(w: &mut Writer, d: &DigestValue) {
    w.array(2).i64(d.alg().cose_id()).bytes(d.as_bytes());
}

/// Reads a digest `[alg, bytes]`.
pub fn read_digest(r: &mut Reader<'_>) -> Result<DigestValue> {
    r.array_of(2, "[digest-alg, digest-bytes]")?;
    let alg = DigestAlg::from_cose(r.i64()?)?;
    DigestValue::new(alg, r.bytes()?).ok_or(Error::InvalidValue {
        context: r.context(),
        element: "digest",
        reason: "length does not match its algorithm",
    })
}

/// Writes a component id `[* bstr]`.
pub fn write_component_id(w: &mut Writer, id: &ComponentIdBytes) {
    w.array(id.len());
    for part in id {
        w.bytes(part);
    }
}

/// Reads a component id `[* bstr]`.
pub fn read_component_id(r: &mut Reader<'_>) -> Result<ComponentIdBytes> {
    let n = r.array()?;
    let mut id = Vec::new();
    for _ in 0..n {
        id.push(r.bytes()?.to_vec());
    }
    Ok(id)
}

fn write_floors(w: &mut Writer, floors: &[(ComponentIdBytes, u64)]) {
    w.array(floors.len());
    for (id, floor) in floors {
        w.array(2);
        write_component_id(w, id);
        w.u64(*floor);
    }
}

fn read_floors(r: &mut Reader<'_>) -> Result<Vec<(ComponentIdBytes, u64)>> {
    let n = r.array()?;
    let mut floors = Vec::new();
    for _ in 0..n {
        r.array_of(2, "[component-id, floor]")?;
        floors.push((read_component_id(r)?, r.u64()?));
    }
    Ok(floors)
}

/// Writes a pending install.
pub fn write_pending(w: &mut Writer, p: &PendingInstall) {
    w.array(4).u64(p.slot).u64(p.sequence_number);
    write_digest(w, &p.manifest_digest);
    w.array(p.components.len());
    for c in &p.components {
        w.array(3);
        write_component_id(w, &c.component_id);
        write_digest(w, &c.digest);
        w.u64(c.size);
    }
}

/// Reads a pending install.
pub fn read_pending(r: &mut Reader<'_>) -> Result<PendingInstall> {
    r.array_of(4, "pending install")?;
    let slot = r.u64()?;
    let sequence_number = r.u64()?;
    let manifest_digest = read_digest(r)?;
    let n = r.array()?;
    let mut components = Vec::new();
    for _ in 0..n {
        r.array_of(3, "[component-id, digest, size]")?;
        components.push(InstalledComponent {
            component_id: read_component_id(r)?,
            digest: read_digest(r)?,
            size: r.u64()?,
        });
    }
    Ok(PendingInstall {
        slot,
        sequence_number,
        manifest_digest,
        components,
    })
}

fn write_ints(w: &mut Writer, v: &[i64]) {
    w.array(v.len());
    for x in v {
        w.i64(*x);
    }
}

fn read_ints(r: &mut Reader<'_>) -> Result<Vec<i64>> {
    let n = r.array()?;
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(r.i64()?);
    }
    Ok(v)
}

fn encode_reply(w: &mut Writer, reply: &Reply) {
    match reply {
        Reply::Info(i) => {
            w.array(14)
                .u64(i.abi_version.into())
                .u64(i.max_chunk.into())
                .u64(i.max_envelope.into())
                .array(4);
            write_ints(w, &i.algorithms.digest);
            write_ints(w, &i.algorithms.signature);
            write_ints(w, &i.algorithms.content_encryption);
            write_ints(w, &i.algorithms.key_distribution);
            w.bytes(&i.vendor_id.0).bytes(&i.class_id.0);
            opt_uuid(w, &i.device_id);
            w.bytes(&i.device_public_key)
                .u64(i.storage.code())
                .bool(i.provisioned)
                .bool(i.kek_present);
            write_floors(w, &i.floors);
            match &i.install {
                InstallState::Idle => {
                    w.null();
                }
                InstallState::Trial(p) => write_pending(w, p),
            }
            w.u64(match i.last_outcome {
                LastOutcome::None => 0,
                LastOutcome::Confirmed => 1,
                LastOutcome::RolledBack => 2,
            });
        }
        Reply::Plan(p) => {
            w.array(4);
            write_digest(w, &p.manifest_digest);
            w.u64(p.sequence_number).u64(p.slot).array(p.items.len());
            for item in &p.items {
                w.array(9).u64(item.index.into());
                write_component_id(w, &item.component_id);
                w.u64(item.slot);
                match &item.source {
                    PayloadSource::Uri(u) => w.array(2).u64(0).str(u),
                    PayloadSource::Integrated(k) => w.array(2).u64(1).str(k),
                    PayloadSource::Content(c) => w.array(2).u64(2).bytes(c),
                };
                match item.size {
                    Some(s) => w.u64(s),
                    None => w.null(),
                };
                match &item.digest {
                    Some(d) => write_digest(w, d),
                    None => {
                        w.null();
                    }
                }
                match &item.encryption_info {
                    Some(e) => w.bytes(e),
                    None => w.null(),
                };
                match item.fetch_size {
                    Some(s) => w.u64(s),
                    None => w.null(),
                };
                match &item.fetch_digest {
                    Some(d) => write_digest(w, d),
                    None => {
                        w.null();
                    }
                }
            }
        }
        Reply::Approval(a) => {
            w.array(3).bytes(&a.token);
            write_digest(w, &a.digest);
            w.u64(a.size);
        }
        Reply::Decrypted { written, done } => {
            w.array(2).u64((*written).into()).bool(*done);
        }
        Reply::Committed(p) => write_pending(w, p),
        Reply::Confirmed(floors) => write_floors(w, floors),
        Reply::Report(report) => {
            w.bytes(report);
        }
        Reply::Boot(record) => crate::boot::write_boot_record(w, record),
        Reply::Done => {
            w.null();
        }
    }
}

fn decode_reply(command: CommandId, r: &mut Reader<'_>) -> Result<Reply> {
    Ok(match command {
        CommandId::GetInfo => {
            r.array_of(14, "GET_INFO reply")?;
            let abi_version = u32::try_from(r.u64()?).unwrap_or(u32::MAX);
            let max_chunk = u32::try_from(r.u64()?).unwrap_or(0);
            let max_envelope = u32::try_from(r.u64()?).unwrap_or(0);
            r.array_of(4, "algorithms")?;
            let algorithms = Algorithms {
                digest: read_ints(r)?,
                signature: read_ints(r)?,
                content_encryption: read_ints(r)?,
                key_distribution: read_ints(r)?,
            };
            let vendor_id = read_uuid(r)?;
            let class_id = read_uuid(r)?;
            let device_id = read_opt_uuid(r)?;
            let device_public_key = r.bytes()?.to_vec();
            let storage = StorageKind::from_code(r.u64()?).ok_or(Error::InvalidValue {
                context: "GET_INFO reply",
                element: "storage",
                reason: "unknown storage kind",
            })?;
            let provisioned = r.bool()?;
            let kek_present = r.bool()?;
            let floors = read_floors(r)?;
            let install = match opt_null(r, read_pending)? {
                None => InstallState::Idle,
                Some(p) => InstallState::Trial(p),
            };
            let last_outcome = match r.u64()? {
                0 => LastOutcome::None,
                1 => LastOutcome::Confirmed,
                2 => LastOutcome::RolledBack,
                _ => {
                    return Err(Error::InvalidValue {
                        context: "GET_INFO reply",
                        element: "last outcome",
                        reason: "unknown value",
                    })
                }
            };
            Reply::Info(alloc::boxed::Box::new(Info {
                abi_version,
                max_chunk,
                max_envelope,
                algorithms,
                vendor_id,
                class_id,
                device_id,
                device_public_key,
                storage,
                provisioned,
                kek_present,
                floors,
                install,
                last_outcome,
            }))
        }
        CommandId::LoadManifest => {
            r.array_of(4, "plan")?;
            let manifest_digest = read_digest(r)?;
            let sequence_number = r.u64()?;
            let slot = r.u64()?;
            let n = r.array()?;
            let mut items = Vec::new();
            for _ in 0..n {
                r.array_of(9, "plan item")?;
                let index = u32_of(r)?;
                let component_id = read_component_id(r)?;
                let slot = r.u64()?;
                r.array_of(2, "payload source")?;
                let source = match r.u64()? {
                    0 => PayloadSource::Uri(String::from(r.str()?)),
                    1 => PayloadSource::Integrated(String::from(r.str()?)),
                    2 => PayloadSource::Content(r.bytes()?.to_vec()),
                    _ => {
                        return Err(Error::InvalidValue {
                            context: "plan item",
                            element: "source",
                            reason: "unknown source kind",
                        })
                    }
                };
                let size = opt_null(r, |r| r.u64())?;
                let digest = opt_null(r, read_digest)?;
                let encryption_info = opt_null(r, |r| r.bytes().map(<[u8]>::to_vec))?;
                let fetch_size = opt_null(r, |r| r.u64())?;
                let fetch_digest = opt_null(r, read_digest)?;
                items.push(PlanItem {
                    index,
                    component_id,
                    slot,
                    source,
                    size,
                    digest,
                    encryption_info,
                    fetch_size,
                    fetch_digest,
                });
            }
            Reply::Plan(Plan {
                manifest_digest,
                sequence_number,
                slot,
                items,
            })
        }
        CommandId::PayloadFinal => {
            r.array_of(3, "approval")?;
            Reply::Approval(Approval {
                token: r.bytes()?.to_vec(),
                digest: read_digest(r)?,
                size: r.u64()?,
            })
        }
        CommandId::DecryptForInstall => {
            r.array_of(2, "decrypt reply")?;
            Reply::Decrypted {
                written: u32_of(r)?,
                done: r.bool()?,
            }
        }
        CommandId::Commit => Reply::Committed(read_pending(r)?),
        CommandId::Confirm => Reply::Confirmed(read_floors(r)?),
        CommandId::Report => Reply::Report(r.bytes()?.to_vec()),
        CommandId::BootVerify => Reply::Boot(crate::boot::read_boot_record(r)?),
        CommandId::PayloadUpdate
        | CommandId::ConfirmUpdate
        | CommandId::Rollback
        | CommandId::Abort
        | CommandId::Provision => {
            r.null()?;
            Reply::Done
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::GetInfo,
            Request::LoadManifest {
                target_slot: 1,
                nonce: None,
            },
            Request::LoadManifest {
                target_slot: 0,
                nonce: Some(vec![6; MAX_NONCE]),
            },
            Request::PayloadUpdate {
                component: 2,
                offset: 7,
            },
            Request::PayloadFinal { component: 0 },
            Request::DecryptForInstall {
                component: 1,
                token: vec![1, 2, 3],
                offset: 4096,
                last: true,
            },
            Request::Commit {
                tokens: vec![vec![9], vec![]],
            },
            Request::ConfirmUpdate {
                component: 0,
                offset: 0,
            },
            Request::Confirm,
            Request::Rollback,
            Request::Abort,
            Request::Report { nonce: None },
            Request::Report {
                nonce: Some(vec![5; 16]),
            },
            Request::Provision(Provisioning {
                kek: Some((vec![0x11; 32], b"fleet".to_vec())),
                vendor_id: Some(Uuid([1; 16])),
                class_id: None,
                device_id: Some(Uuid([3; 16])),
            }),
        ];
        for req in requests {
            let bytes = req.encode();
            assert!(bytes.len() <= req.command().max_request(), "{req:?}");
            assert_eq!(Request::decode(req.command(), &bytes).unwrap(), req);
        }
    }

    #[test]
    fn version_mismatch_is_refused_clearly() {
        let mut w = Writer::new();
        w.array(1).u64(99);
        let e = Request::decode(CommandId::GetInfo, &w.into_bytes()).unwrap_err();
        assert!(
            alloc::format!("{e}").contains("ABI version mismatch"),
            "{e}"
        );
        let mut w = Writer::new();
        w.array(3).u64(7).u64(0).null();
        let e = decode_response(CommandId::Abort, &w.into_bytes()).unwrap_err();
        assert!(
            alloc::format!("{e}").contains("the TA speaks version 7"),
            "{e}"
        );
    }

    #[test]
    fn replies_round_trip() {
        let digest = DigestAlg::Sha256.digest(b"x");
        let pending = PendingInstall {
            slot: 1,
            sequence_number: 5,
            manifest_digest: digest.clone(),
            components: vec![InstalledComponent {
                component_id: vec![b"fw".to_vec()],
                digest: digest.clone(),
                size: 10,
            }],
        };
        let cases = [
            (
                CommandId::GetInfo,
                Reply::Info(alloc::boxed::Box::new(Info {
                    abi_version: 1,
                    max_chunk: 4096,
                    max_envelope: 65536,
                    algorithms: Algorithms {
                        digest: vec![-16],
                        signature: vec![-35],
                        content_encryption: vec![],
                        key_distribution: vec![-3],
                    },
                    vendor_id: Uuid([1; 16]),
                    class_id: Uuid([2; 16]),
                    device_id: None,
                    device_public_key: vec![4; 97],
                    storage: StorageKind::ReeFs,
                    provisioned: false,
                    kek_present: false,
                    floors: vec![(vec![b"fw".to_vec()], 3)],
                    install: InstallState::Trial(pending.clone()),
                    last_outcome: LastOutcome::RolledBack,
                })),
            ),
            (
                CommandId::LoadManifest,
                Reply::Plan(Plan {
                    manifest_digest: digest.clone(),
                    sequence_number: 3,
                    slot: 1,
                    items: vec![PlanItem {
                        index: 0,
                        component_id: vec![b"fw".to_vec()],
                        slot: 1,
                        source: PayloadSource::Uri("http://x/fw".into()),
                        size: Some(10),
                        digest: Some(digest.clone()),
                        encryption_info: None,
                        fetch_size: Some(26),
                        fetch_digest: None,
                    }],
                }),
            ),
            (
                CommandId::PayloadFinal,
                Reply::Approval(Approval {
                    token: vec![1],
                    digest,
                    size: 3,
                }),
            ),
            (
                CommandId::DecryptForInstall,
                Reply::Decrypted {
                    written: 7,
                    done: false,
                },
            ),
            (CommandId::Commit, Reply::Committed(pending)),
            (CommandId::Confirm, Reply::Confirmed(vec![])),
            (CommandId::Report, Reply::Report(vec![0xd2, 0x84])),
            (CommandId::Rollback, Reply::Done),
        ];
        for (cmd, reply) in cases {
            let bytes = encode_response(&Ok(reply.clone()));
            assert_eq!(decode_response(cmd, &bytes).unwrap(), Ok(reply));
        }
        let rejection = Rejection {
            category: Category::Rollback,
            message: "too old".into(),
        };
        let bytes = encode_response(&Err(rejection.clone()));
        assert_eq!(
            decode_response(CommandId::Commit, &bytes).unwrap(),
            Err(rejection)
        );
    }
}
