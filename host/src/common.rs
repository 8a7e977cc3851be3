//! Helpers the agent, the TEE bridge and the vendor tool share: device identity UUIDs as the
//! SUIT draft derives them, verifier nonces and hex text.

use suit_shared::error::Uuid;

/// UUID of the DNS namespace (RFC 4122), from which vendor ids are derived (§8.4.8.2).
const DNS_NAMESPACE: uuid::Uuid = uuid::Uuid::NAMESPACE_DNS;

/// Vendor id from a vendor domain name: UUID5(DNS namespace, name).
pub fn vendor_uuid(name: &str) -> Uuid {
    Uuid(*uuid::Uuid::new_v5(&DNS_NAMESPACE, name.as_bytes()).as_bytes())
}

/// Class id from a class name: UUID5(vendor id, name).
pub fn class_uuid(vendor: Uuid, name: &str) -> Uuid {
    Uuid(*uuid::Uuid::new_v5(&uuid::Uuid::from_bytes(vendor.0), name.as_bytes()).as_bytes())
}

/// Text that is not a UUID in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid UUID {text:?}: {reason}")]
pub struct InvalidUuid {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a UUID in canonical text form.
pub fn parse_uuid(text: &str) -> Result<Uuid, InvalidUuid> {
    uuid::Uuid::parse_str(text)
        .map(|u| Uuid(*u.as_bytes()))
        .map_err(|e| InvalidUuid {
            text: text.to_string(),
            reason: e.to_string(),
        })
}

/// A verifier's nonce given on a command line in hex (1 to [`suit_shared::abi::MAX_NONCE`]
/// bytes): `suit-agent --nonce`, `suit-tool verify-token/verify-report --nonce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce(pub Vec<u8>);

/// Parses a [`Nonce`] (a clap value parser).
pub fn parse_nonce(text: &str) -> Result<Nonce, String> {
    match decode_hex(text) {
        Some(n) if !n.is_empty() && n.len() <= suit_shared::abi::MAX_NONCE => Ok(Nonce(n)),
        _ => Err(format!(
            "{text:?} is not a nonce: 1 to {} bytes in hex",
            suit_shared::abi::MAX_NONCE
        )),
    }
}

/// Decodes hexadecimal text.
pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
