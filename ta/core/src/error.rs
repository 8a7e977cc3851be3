//! Errors of the TA core. Every rejection has a [`Category`] and a message for the user; it
//! travels to the host as a message code and its arguments ([`suit_shared::abi::Refusal`]),
//! and the host renders the text.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use suit_shared::abi::rejection::code;
use suit_shared::abi::{Arg, CommandId, Refusal};
use suit_shared::processor::Location;
use suit_shared::{Category, Error as SuitError};

use crate::platform::StorageError;

/// Why the TA refused a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaError {
    /// The SUIT core rejected the envelope, a payload or a request.
    Suit(SuitError),
    /// The SUIT core rejected the manifest while running one of its sequences.
    Processing {
        /// The rejection.
        error: SuitError,
        /// The sequence and component of the command that failed (`None` if it failed before
        /// entering a sequence).
        at: Option<Location>,
    },
    /// The command is not allowed in the current state.
    OutOfOrder {
        /// The command.
        command: &'static str,
        /// What is missing or wrong.
        reason: String,
    },
    /// An approval token was not given, does not verify or belongs to something else.
    Token(String),
    /// An approval token that does not decode or verify as a device-signed object.
    TokenInvalid(SuitError),
    /// Secure storage failed.
    Storage(StorageError),
    /// The state object exists but cannot be trusted.
    CorruptState(Corruption),
    /// The second run of the manifest (COMMIT) took another path than the planning run.
    Diverged,
    /// BOOT_VERIFY: the slot may not boot.
    NotBootable {
        /// The slot.
        slot: u64,
        /// Why.
        reason: String,
        /// Policy (no or withdrawn approval) or rollback (below the floor).
        category: Category,
    },
    /// The manifest is authentic but the TA's install policy refuses it.
    Refused(String),
    /// A streamed block or hash block does not belong to the manifest's dm-verity tree, or
    /// the hash blocks sent do not fit the data (STREAM_UPDATE); nothing of that chunk left
    /// the TA.
    Tree {
        /// The plan item.
        component: u32,
        /// What did not match.
        error: suit_shared::verity::TreeError,
    },
    /// The invoke's shared memory (the bulk data in or out) could not be read or written.
    Bulk(&'static str),
    /// Something is too large.
    TooLarge {
        /// What.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl TaError {
    /// The category of this error.
    pub fn category(&self) -> Category {
        match self {
            TaError::Suit(e) | TaError::Processing { error: e, .. } => e.category(),
            TaError::OutOfOrder { .. } | TaError::Refused(_) => Category::Policy,
            TaError::Token(_) | TaError::TokenInvalid(_) => Category::Authentication,
            TaError::Diverged => Category::Digest,
            TaError::Tree { error, .. } => match error {
                suit_shared::verity::TreeError::Block(_)
                | suit_shared::verity::TreeError::HashBlock { .. } => Category::Digest,
                _ => Category::Malformed,
            },
            TaError::NotBootable { category, .. } => *category,
            TaError::Storage(_)
            | TaError::CorruptState(_)
            | TaError::TooLarge { .. }
            | TaError::Bulk(_) => Category::Resource,
        }
    }

    /// The rejection sent to the host: a message code and its arguments, no text.
    pub fn rejection(&self) -> Refusal {
        let (code, args) = self.wire();
        Refusal {
            category: self.category(),
            code,
            args,
        }
    }

    /// The code of this error's message and its arguments ([`suit_shared::abi::rejection`]).
    pub fn wire(&self) -> (u16, Vec<Arg>) {
        use suit_shared::verity::TreeError;
        let t = Arg::text;
        let n = Arg::size;
        match self {
            TaError::Suit(e) | TaError::Processing { error: e, .. } => e.wire(),
            TaError::OutOfOrder { command, reason } => {
                (code::TA_OUT_OF_ORDER, vec![t(command), t(reason)])
            }
            TaError::Token(reason) => (code::TA_TOKEN, vec![t(reason)]),
            TaError::TokenInvalid(e) => {
                let (inner, args) = e.wire();
                (code::TA_TOKEN_INVALID, vec![Arg::Message(inner, args)])
            }
            TaError::Storage(e) => (code::TA_STORAGE, vec![t(&e.0)]),
            TaError::CorruptState(Corruption::Reason(reason)) => {
                (code::TA_CORRUPT_STATE, vec![t(reason)])
            }
            TaError::CorruptState(Corruption::Decode(e)) => {
                let (inner, args) = e.wire();
                (
                    code::TA_CORRUPT_STATE_DECODE,
                    vec![Arg::Message(inner, args)],
                )
            }
            TaError::Diverged => (code::TA_DIVERGED, vec![]),
            TaError::NotBootable { slot, reason, .. } => {
                (code::TA_NOT_BOOTABLE, vec![Arg::Uint(*slot), t(reason)])
            }
            TaError::Refused(reason) => (code::TA_REFUSED, vec![t(reason)]),
            TaError::Tree { component, error } => {
                let c = Arg::Uint((*component).into());
                match *error {
                    TreeError::Block(b) => (code::TA_TREE_BLOCK, vec![c, Arg::Uint(b)]),
                    TreeError::HashBlock { level, index } => (
                        code::TA_TREE_HASH_BLOCK,
                        vec![c, Arg::Uint(index), Arg::Uint(level.into())],
                    ),
                    TreeError::MissingHashBlock { level, index } => (
                        code::TA_TREE_MISSING_HASH_BLOCK,
                        vec![c, Arg::Uint(index), Arg::Uint(level.into())],
                    ),
                    TreeError::ExtraHashBytes(bytes) => {
                        (code::TA_TREE_EXTRA_HASH_BYTES, vec![c, n(bytes)])
                    }
                    TreeError::OutOfRange { block, blocks } => (
                        code::TA_TREE_OUT_OF_RANGE,
                        vec![c, Arg::Uint(block), Arg::Uint(blocks)],
                    ),
                }
            }
            TaError::Bulk(what) => (code::TA_BULK, vec![t(what)]),
            TaError::TooLarge { what, size, limit } => {
                (code::TA_TOO_LARGE, vec![t(what), n(*size), n(*limit)])
            }
        }
    }

    pub(crate) fn order(command: CommandId, reason: impl Into<String>) -> Self {
        TaError::OutOfOrder {
            command: command.name(),
            reason: reason.into(),
        }
    }
}

/// Why the TA's state object cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// A reason of the state format's own (magic, version, checksum, a missing key).
    Reason(String),
    /// The object's content does not decode.
    Decode(SuitError),
}

impl From<&str> for Corruption {
    fn from(reason: &str) -> Self {
        Corruption::Reason(String::from(reason))
    }
}

impl From<SuitError> for TaError {
    fn from(e: SuitError) -> Self {
        TaError::Suit(e)
    }
}

impl From<StorageError> for TaError {
    fn from(e: StorageError) -> Self {
        TaError::Storage(e)
    }
}

/// Host side: the message, rendered from the same table the host decodes rejections with.
impl core::fmt::Display for TaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (code, args) = self.wire();
        suit_shared::abi::rejection::render(code, &args, f).map_err(|_| core::fmt::Error)
    }
}

impl core::error::Error for TaError {}

/// Core result type.
pub type Result<T, E = TaError> = core::result::Result<T, E>;
