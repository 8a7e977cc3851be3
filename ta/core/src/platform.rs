//! What the core needs from the environment it runs in: secure storage of named objects,
//! random numbers and time. The OP-TEE glue implements these with the GlobalPlatform TEE
//! Internal Core API; the host simulator with files, the OS RNG and the system clock.

use alloc::string::String;
use alloc::vec::Vec;

use suit_shared::abi::StorageKind;

/// A storage failure, with a readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secure storage: {0}")]
pub struct StorageError(pub String);

/// Named objects in secure storage.
pub trait Storage {
    /// The object's whole content; `Ok(None)` when it does not exist.
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Replaces the object's content atomically: after a power cut the object holds either
    /// the old or the new content, never a mix and never nothing.
    fn replace(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError>;

    /// Which kind of storage this is (reported in GET_INFO).
    fn kind(&self) -> StorageKind;
}

/// A cryptographically secure random source.
pub trait Rng {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The device's notion of time, for use-before conditions.
pub trait Clock {
    /// Seconds since 1970, if the environment has a clock.
    fn now(&self) -> Option<u64>;
}
