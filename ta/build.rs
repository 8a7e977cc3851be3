//! Build script of the SUIT TA: writes the OP-TEE TA header (UUID, stack and heap sizes,
//! properties) and the link arguments against the TA dev kit (TA_DEV_KIT_DIR).
//!
//! Inputs (environment, all optional except TA_DEV_KIT_DIR): TA_UUID, TA_STACK_SIZE,
//! TA_HEAP_SIZE (bytes; suffixes K and M accepted). ta/ta.mk sets them.

use optee_utee_build::{Error, TaConfig};

const DEFAULT_UUID: &str = "5f8b4d1e-2c3a-4b7e-9d6f-1a2b3c4d5e6f";

fn size_from_env(name: &str, default: u32) -> u32 {
    println!("cargo:rerun-if-env-changed={name}");
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let text = text.trim();
    let (digits, scale) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 1024),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 1024 * 1024),
        _ => (text, 1),
    };
    match digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
    {
        Some(n) => n,
        None => panic!("{name}={text} is not a size in bytes (e.g. 65536, 64K, 1M)"),
    }
}

fn main() -> Result<(), Error> {
    println!("cargo:rerun-if-env-changed=TA_UUID");
    let uuid = std::env::var("TA_UUID").unwrap_or_else(|_| DEFAULT_UUID.to_string());
    let stack = size_from_env("TA_STACK_SIZE", 64 * 1024);
    let heap = size_from_env("TA_HEAP_SIZE", 512 * 1024);
    // The TA code can read its own UUID with env!("TA_UUID").
    println!("cargo:rustc-env=TA_UUID={uuid}");

    let config = TaConfig::new_default_with_cargo_env(&uuid)?
        .ta_stack_size(stack)
        .ta_data_size(heap);
    optee_utee_build::build(config)
}
