//! `suit-tool anchors`: an unsigned trust-anchor update envelope (docs/anchors.md), to be
//! signed with `suit-tool sign` under the anchor set the devices hold now.
//!
//! The payload ([`suit_shared::anchors`]) is written beside the envelope (`OUT.payload`) and
//! integrated in it as `#anchors`; the manifest is the ordinary template of `create` for the
//! component `["suit-trust-anchors"]`, so its image digest and size bind the payload.

use std::path::{Path, PathBuf};

use suit_shared::anchors::{self, AnchorUpdate, Op};
use suit_shared::auth::{AnchorPolicy, TrustAnchor};

use super::{spec, write, ToolError};
use crate::common::decode_hex;
use crate::keys;

/// Options of `suit-tool anchors`.
#[derive(Debug, clap::Args)]
pub struct AnchorsArgs {
    /// Add this public key (SPKI PEM); repeatable.
    #[arg(long = "add", value_name = "PUB.pem")]
    add: Vec<PathBuf>,
    /// Replace an anchor by a new key: OLD=NEW.pem, OLD a public key file or a key id as for
    /// --retire; repeatable.
    #[arg(long = "replace", value_name = "OLD=NEW.pem")]
    replace: Vec<String>,
    /// Retire an anchor: its public key file, or its key id (its kid, or the SHA-256 of its
    /// public key), as text or 0x-prefixed hex; repeatable.
    #[arg(long = "retire", value_name = "PUB.pem|KID")]
    retire: Vec<String>,
    /// The new set's policy: every anchor must sign (default: any one).
    #[arg(long)]
    require_all: bool,
    /// Sequence number of the anchor update (above the last one the devices applied).
    #[arg(long)]
    sequence: u64,
    /// Vendor name (UUIDv5 as the SUIT draft derives it) the devices must have.
    #[arg(long)]
    vendor: Option<String>,
    /// Vendor id (UUID) the devices must have.
    #[arg(long, value_name = "UUID", conflicts_with = "vendor")]
    vendor_id: Option<String>,
    /// Class name the devices must have.
    #[arg(long)]
    class: Option<String>,
    /// Class id (UUID) the devices must have.
    #[arg(long, value_name = "UUID", conflicts_with = "class")]
    class_id: Option<String>,
    /// Output envelope (unsigned); the payload goes to OUT.payload.
    #[arg(long, value_name = "OUT.suit")]
    out: PathBuf,
}

/// A key id from a public key file or from text / 0x-hex.
fn key_id(arg: &str) -> Result<Vec<u8>, ToolError> {
    let path = Path::new(arg);
    if path.is_file() {
        return Ok(anchors::key_id(&keys::load_trust_anchor(path)?));
    }
    match arg.strip_prefix("0x") {
        Some(hex) => decode_hex(hex)
            .ok_or_else(|| ToolError::Usage(format!("{arg}: not a file nor valid hex"))),
        None => Ok(arg.as_bytes().to_vec()),
    }
}

fn signature_key(path: &Path) -> Result<TrustAnchor, ToolError> {
    let anchor = keys::load_trust_anchor(path)?;
    match anchor {
        TrustAnchor::Signature { .. } => Ok(anchor),
        TrustAnchor::Hmac256 { .. } => Err(ToolError::Usage(format!(
            "{}: not a public signature key",
            path.display()
        ))),
    }
}

/// The update's operations: retirements, then replacements, then additions.
fn operations(args: &AnchorsArgs) -> Result<Vec<Op>, ToolError> {
    let mut ops = Vec::new();
    for r in &args.retire {
        ops.push(Op::Retire(key_id(r)?));
    }
    for r in &args.replace {
        let (old, new) = r
            .split_once('=')
            .ok_or_else(|| ToolError::Usage(format!("--replace {r}: expected OLD=NEW.pem")))?;
        ops.push(Op::Replace(key_id(old)?, signature_key(Path::new(new))?));
    }
    for a in &args.add {
        ops.push(Op::Add(signature_key(a)?));
    }
    if ops.is_empty() {
        return Err(ToolError::Usage(
            "give at least one --add, --replace or --retire".into(),
        ));
    }
    Ok(ops)
}

/// Runs `suit-tool anchors`.
pub fn run(args: AnchorsArgs) -> Result<(), ToolError> {
    let update = AnchorUpdate {
        policy: if args.require_all {
            AnchorPolicy::All
        } else {
            AnchorPolicy::AnyOne
        },
        ops: operations(&args)?,
    };
    let payload = update
        .encode()
        .ok_or_else(|| ToolError::Usage("an anchor update carries public keys only".into()))?;
    // Checked as the TA will: the payload decodes and every key is one of its algorithm.
    AnchorUpdate::decode(&payload)?;
    let mut payload_path = args.out.clone().into_os_string();
    payload_path.push(".payload");
    let payload_path = std::path::absolute(PathBuf::from(payload_path))
        .map_err(|e| ToolError::io(&args.out, e))?;
    write(&payload_path, &payload)?;

    let mut spec = toml::Table::new();
    spec.insert("sequence-number".into(), sequence_value(args.sequence)?);
    for (key, value) in [
        ("vendor", &args.vendor),
        ("vendor-id", &args.vendor_id),
        ("class", &args.class),
        ("class-id", &args.class_id),
    ] {
        if let Some(v) = value {
            spec.insert(key.into(), toml::Value::String(v.clone()));
        }
    }
    let mut component = toml::Table::new();
    let id = String::from_utf8_lossy(anchors::COMPONENT).into_owned();
    component.insert("id".into(), toml::Value::Array(vec![id.into()]));
    component.insert(
        "image".into(),
        toml::Value::String(payload_path.display().to_string()),
    );
    component.insert("integrated".into(), toml::Value::Boolean(true));
    spec.insert(
        "component".into(),
        toml::Value::Array(vec![toml::Value::Table(component)]),
    );
    let spec: spec::Spec = toml::Value::Table(spec)
        .try_into()
        .map_err(|e| ToolError::Usage(format!("anchor update spec: {e}")))?;
    let envelope = super::build(&spec.prepare(Path::new("."))?)?;
    write(&args.out, &envelope)?;
    println!(
        "wrote {} (unsigned anchor update, sequence number {}, {} operation(s)); sign it with \
         the keys of the anchor set in force",
        args.out.display(),
        args.sequence,
        update.ops.len()
    );
    Ok(())
}

fn sequence_value(sequence: u64) -> Result<toml::Value, ToolError> {
    i64::try_from(sequence)
        .map(toml::Value::Integer)
        .map_err(|_| ToolError::Usage("--sequence must be below 2^63".into()))
}
