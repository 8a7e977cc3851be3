//! `suit-tool verify-token` and `verify-report`: check what the TA signed with the device key
//! (approval tokens, SUIT reports) against the device's public key. Exit 0 valid, 1 invalid,
//! 2 usage or I/O error.

use std::path::PathBuf;

use suit_shared::auth::TrustAnchor;
use suit_shared::crypto::SigAlg;
use suit_shared::report::{Reason, Report, ReportResult, PENDING};
use suit_shared::token::Token;

use super::{hex, read, ToolError};
use crate::common::{parse_nonce, Nonce};
use crate::keys;

/// Arguments of `verify-token`.
#[derive(Debug, clap::Args)]
pub struct VerifyTokenArgs {
    /// The device's public key (SPKI PEM, P-384), e.g. from `suit-agent info`.
    #[arg(long, value_name = "PUB.pem")]
    device_key: PathBuf,
    /// The token (COSE_Sign1 bytes).
    token: PathBuf,
    /// The verifier nonce the token must carry (hex), as given to the agent's `--nonce`.
    #[arg(long, value_name = "HEX", value_parser = parse_nonce)]
    nonce: Option<Nonce>,
}

/// Arguments of `verify-report`.
#[derive(Debug, clap::Args)]
pub struct VerifyReportArgs {
    /// The device's public key (SPKI PEM, P-384), e.g. from `suit-agent info`.
    #[arg(long, value_name = "PUB.pem")]
    device_key: PathBuf,
    /// The signed report (as `suit-agent` keeps and posts it).
    report: PathBuf,
    /// JSON output.
    #[arg(long)]
    json: bool,
    /// The nonce the report must carry (hex), as given to the agent's `--nonce`.
    #[arg(long, value_name = "HEX", value_parser = parse_nonce)]
    nonce: Option<Nonce>,
}

/// Fails (exit 1) unless `found` is the `expected` nonce, when one is expected.
fn check_nonce(what: &str, expected: Option<&[u8]>, found: Option<&[u8]>) -> Result<(), ToolError> {
    match expected {
        Some(e) if found != Some(e) => Err(ToolError::Rejected(
            suit_shared::Error::NotAuthenticated(format!(
                "the {what} carries {}, not the expected nonce {} (stale or replayed?)",
                found.map_or_else(|| "no nonce".to_string(), |n| format!("nonce {}", hex(n))),
                hex(e)
            )),
        )),
        _ => Ok(()),
    }
}

/// The device public key (P-384, SEC1 uncompressed) of a PEM file.
fn device_key(path: &std::path::Path) -> Result<Vec<u8>, ToolError> {
    match keys::load_trust_anchor(path)? {
        TrustAnchor::Signature {
            alg: SigAlg::EcdsaP384Sha384,
            public_key,
            ..
        } => Ok(public_key),
        other => Err(ToolError::Usage(format!(
            "{}: device keys are P-384, this is an {}",
            path.display(),
            other.describe()
        ))),
    }
}

/// Verifies a SUIT report and prints what it says.
pub fn verify_report(args: VerifyReportArgs) -> Result<(), ToolError> {
    let report = Report::verify(&read(&args.report)?, &device_key(&args.device_key)?)?;
    check_nonce(
        "report",
        args.nonce.as_ref().map(|n| &n.0[..]),
        report.nonce.as_deref(),
    )?;
    let (result, code, reason) = match &report.result {
        ReportResult::Success => ("success", None, None),
        ReportResult::Pending => (
            "pending",
            Some(PENDING),
            Some(Reason::OperationFailed.code()),
        ),
        ReportResult::Failure { code, reason, .. } => ("failure", Some(*code), Some(reason.code())),
    };
    // Where it failed: the manifest section's key (0: not while running a sequence) and the
    // component index.
    let failed_at = match &report.result {
        ReportResult::Failure {
            section, component, ..
        } => Some((*section, *component)),
        _ => None,
    };
    if args.json {
        let value = serde_json::json!({
            "result": result,
            "result-code": code,
            "result-reason": reason,
            "manifest-uri": report.manifest_uri,
            "manifest-digest": hex(report.manifest_digest.as_bytes()),
            "nonce": report.nonce.as_deref().map(hex),
            "manifest-section": failed_at.map(|(section, _)| section),
            "component-index": failed_at.map(|(_, component)| component),
        });
        println!("{value}");
    } else {
        println!(
            "valid SUIT report: {result}{}{} for manifest {:?}{}",
            code.map(|c| format!(" (code {c}, reason {})", reason.unwrap_or_default()))
                .unwrap_or_default(),
            failed_at
                .map(|(section, component)| format!(
                    " in manifest section {section}, component {component}"
                ))
                .unwrap_or_default(),
            report.manifest_digest,
            if report.manifest_uri.is_empty() {
                String::new()
            } else {
                format!(" ({})", report.manifest_uri)
            }
        );
    }
    Ok(())
}

/// Verifies the token and prints what it approves.
pub fn verify_token(args: VerifyTokenArgs) -> Result<(), ToolError> {
    let key = device_key(&args.device_key)?;
    let token = Token::verify(&read(&args.token)?, &key)?;
    let c = &token.claims;
    check_nonce(
        "token",
        args.nonce.as_ref().map(|n| &n.0[..]),
        c.verifier_nonce.as_deref(),
    )?;
    println!(
        "valid approval token: component {} for slot {}, image {:?} ({} bytes), manifest {:?} \
         with sequence number {}, session nonce {}{}",
        c.component_id,
        c.slot,
        c.image_digest,
        c.image_size,
        c.manifest_digest,
        c.sequence_number,
        hex(&c.nonce),
        c.verifier_nonce
            .as_deref()
            .map(|n| format!(", verifier nonce {}", hex(n)))
            .unwrap_or_default()
    );
    Ok(())
}
