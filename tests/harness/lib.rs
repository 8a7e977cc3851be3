//! Shared helpers of the integration tests.
pub mod qemu;
pub mod vectors;
