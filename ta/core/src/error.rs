//! Errors of the TA core. Every rejection has a [`Category`] and a message for the user; it
//! travels to the host as an [`suit_shared::abi::Rejection`].

use alloc::string::String;

use suit_shared::abi::{CommandId, Rejection};
use suit_shared::processor::Location;
use suit_shared::{Category, Error as SuitError};

use crate::platform::StorageError;

/// Why the TA refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaError {
    /// The SUIT core rejected the envelope, a payload or a request.
    #[error(transparent)]
    Suit(#[from] SuitError),
    /// The SUIT core rejected the manifest while running one of its sequences.
    #[error("{error}")]
    Processing {
        /// The rejection.
        error: SuitError,
        /// The sequence and component of the command that failed (`None` if it failed before
        /// entering a sequence).
        at: Option<Location>,
    },
    /// The command is not allowed in the current state.
    #[error("{command} is not allowed now: {reason}")]
    OutOfOrder {
        /// The command.
        command: &'static str,
        /// What is missing or wrong.
        reason: String,
    },
    /// An approval token was not given, does not verify or belongs to something else.
    #[error("approval token refused: {0}")]
    Token(String),
    /// Secure storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The state object exists but cannot be trusted.
    #[error(
        "the TA's state object in secure storage is corrupt ({0}); refusing to continue because \
         the anti-rollback floors and keys cannot be trusted — the device needs servicing"
    )]
    CorruptState(String),
    /// The second run of the manifest (COMMIT) took another path than the planning run.
    #[error(
        "the manifest takes another path over the digests the TA computed than it did when \
         planning (LOAD_MANIFEST); nothing is committed"
    )]
    Diverged,
    /// BOOT_VERIFY: the slot may not boot.
    #[error("component-slot {slot} is not approved to boot: {reason}")]
    NotBootable {
        /// The slot.
        slot: u64,
        /// Why.
        reason: String,
        /// Policy (no or withdrawn approval) or rollback (below the floor).
        category: Category,
    },
    /// The manifest is authentic but the TA's install policy refuses it.
    #[error("refused by the TA's install policy: {0}")]
    Refused(String),
    /// A streamed block or hash block does not belong to the manifest's dm-verity tree, or
    /// the hash blocks sent do not fit the data (STREAM_UPDATE); nothing of that chunk left
    /// the TA.
    #[error("component {component}: {error}; nothing of this chunk was released")]
    Tree {
        /// The plan item.
        component: u32,
        /// What did not match.
        error: suit_shared::verity::TreeError,
    },
    /// The invoke's shared memory (the bulk data in or out) could not be read or written.
    #[error("the shared memory of this invoke could not be {0}")]
    Bulk(&'static str),
    /// Something is too large.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
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
            TaError::Token(_) => Category::Authentication,
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

    /// The rejection sent to the host.
    pub fn rejection(&self) -> Rejection {
        Rejection {
            category: self.category(),
            message: alloc::format!("{self}"),
        }
    }

    pub(crate) fn order(command: CommandId, reason: impl Into<String>) -> Self {
        TaError::OutOfOrder {
            command: command.name(),
            reason: reason.into(),
        }
    }
}

/// Core result type.
pub type Result<T, E = TaError> = core::result::Result<T, E>;
