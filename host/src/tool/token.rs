//! `suit-tool verify-token`: checks an approval token of the TA (suit_shared::token) against
//! the device's public key. Exit 0 valid, 1 invalid, 2 usage or I/O error.

use std::path::PathBuf;

use suit_shared::auth::TrustAnchor;
use suit_shared::manifest::ComponentId;
use suit_shared::token::Token;

use super::{hex, read, ToolError};
use crate::keys;

/// Arguments of `verify-token`.
#[derive(Debug, clap::Args)]
pub struct VerifyTokenArgs {
    /// The device's public key (SPKI PEM, P-384), e.g. from `suit-agent info`.
    #[arg(long, value_name = "PUB.pem")]
    device_key: PathBuf,
    /// The token (COSE_Sign1 bytes).
    token: PathBuf,
}

/// Verifies the token and prints what it approves.
pub fn verify_token(args: VerifyTokenArgs) -> Result<(), ToolError> {
    let key = match keys::load_trust_anchor(&args.device_key)? {
        TrustAnchor::P384 { key, .. } => key,
        other => {
            return Err(ToolError::Usage(format!(
                "{}: device keys are P-384, this is an {}",
                args.device_key.display(),
                other.describe()
            )))
        }
    };
    let token = Token::verify(&read(&args.token)?, &key)?;
    let c = &token.claims;
    let parts: Vec<&[u8]> = c.component_id.iter().map(Vec::as_slice).collect();
    println!(
        "valid approval token: component {} for slot {}, image {:?} ({} bytes), manifest {:?} \
         with sequence number {}, session nonce {}",
        ComponentId(parts),
        c.slot,
        c.image_digest,
        c.image_size,
        c.manifest_digest,
        c.sequence_number,
        hex(&c.nonce)
    );
    Ok(())
}
