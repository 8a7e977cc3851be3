//! The no_std core shared by the TA, the agent and the vendor tool: strict CBOR/COSE decoding,
//! the SUIT envelope and manifest model, authentication, and the command processor.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod abi;
pub mod anchors;
pub mod auth;
#[cfg(feature = "author")]
pub mod author;
pub mod boot;
pub mod cbor;
pub mod codec;
pub mod command;
pub mod component;
pub mod crypto;
pub mod digest;
pub mod encryption;
pub mod envelope;
pub mod error;
pub mod manifest;
pub mod params;
pub mod processor;
pub mod report;
pub mod token;
pub mod verity;

pub use error::{Category, Error, Result};
