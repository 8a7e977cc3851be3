//! Normal-world side of the project: the vendor tool and (later) the device agent.
// No unsafe code, but for the OP-TEE backend's libteec calls (tee/optee/libteec.rs).
#![cfg_attr(not(feature = "optee"), forbid(unsafe_code))]
#![cfg_attr(feature = "optee", deny(unsafe_code))]
#![warn(missing_docs)]

pub mod agent;
pub mod common;
#[cfg(feature = "openssl")]
pub mod crypto;
pub mod diag;
pub mod keys;
pub mod tee;
pub mod tool;
