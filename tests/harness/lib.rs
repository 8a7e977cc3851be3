//! Shared helpers of the integration tests.
pub mod device;
pub mod qemu;
pub mod systemd;
pub mod vectors;

/// The update server: a real nginx, shared with suit-host's own tests.
#[path = "../../host/tests/support/nginx.rs"]
pub mod nginx;

/// Installs missing Debian host tools (used by [`nginx`]).
#[path = "../../host/tests/support/debian.rs"]
pub mod debian;
