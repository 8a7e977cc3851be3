//! Normal-world side of the project: the vendor tool and (later) the device agent.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod common;
#[cfg(feature = "openssl")]
pub mod crypto;
pub mod diag;
pub mod keys;
pub mod tee;
pub mod tool;
