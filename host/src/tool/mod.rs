//! `suit-tool`, the vendor CLI (DESIGN.md §8). Exit codes: 0 success, 1 rejected
//! (authentication, validation, decryption), 2 usage or I/O error.

mod anchors;
pub mod crypt;
mod device;
pub use device::SimulatedDevice;
mod inspect;
pub mod spec;
mod token;
mod verity;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;
use suit_shared::abi::DeviceFacts;
use suit_shared::auth::{alg, alg_name, AnchorPolicy, TrustAnchor};
use suit_shared::author::{build_envelope, encode_manifest};
use suit_shared::digest::{DigestAlg, DigestValue, Hasher};
use suit_shared::envelope::Envelope;
use suit_shared::error::Uuid;
use suit_shared::manifest::{Manifest, SeveredMember};
use suit_shared::processor::{DeviceIdentity, Processor, Section};
use suit_shared::Error;

use crate::common::{hex, parse_uuid, InvalidUuid};
use crate::keys::{self, KeyAlg, KeyError};

/// Errors of the tool, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Bad arguments or input files that are not what they claim.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A key file problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The envelope was rejected.
    #[error("rejected ({category}): {0}", category = .0.category())]
    Rejected(Error),
}

impl From<InvalidUuid> for ToolError {
    fn from(e: InvalidUuid) -> Self {
        ToolError::Usage(e.to_string())
    }
}

impl ToolError {
    /// Wraps an I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ToolError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            // Component I/O failing inside the processor is an I/O problem, not a verdict.
            ToolError::Rejected(Error::Io(_)) => 2,
            ToolError::Rejected(_) => 1,
            _ => 2,
        }
    }
}

impl From<Error> for ToolError {
    fn from(e: Error) -> Self {
        ToolError::Rejected(e)
    }
}

/// Signature algorithms `sign` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SignAlg {
    #[value(name = "ES384")]
    Es384,
    #[value(name = "ESP384")]
    Esp384,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "ESP256")]
    Esp256,
    #[value(name = "Ed25519")]
    Ed25519,
    #[value(name = "EdDSA")]
    EdDsa,
    #[value(name = "ML-DSA-65")]
    MlDsa65,
    #[value(name = "HSS-LMS")]
    HssLms,
}

impl SignAlg {
    fn cose_id(self) -> i64 {
        match self {
            SignAlg::Es384 => alg::ES384,
            SignAlg::Esp384 => alg::ESP384,
            SignAlg::Es256 => alg::ES256,
            SignAlg::Esp256 => alg::ESP256,
            SignAlg::Ed25519 => alg::ED25519,
            SignAlg::EdDsa => alg::EDDSA,
            SignAlg::MlDsa65 => alg::ML_DSA_65,
            SignAlg::HssLms => alg::HSS_LMS,
        }
    }
}

/// Options naming the keys that authenticate envelopes.
#[derive(Debug, clap::Args)]
struct AnchorArgs {
    /// Public key (SPKI PEM: ECDSA P-256/P-384, Ed25519, ML-DSA-65, HSS-LMS) that may sign
    /// envelopes; repeatable.
    #[arg(long = "trust-anchor", value_name = "PUB.pem")]
    trust_anchors: Vec<PathBuf>,
    /// HMAC-256 key file that may MAC envelopes (COSE_Mac0); repeatable.
    #[arg(long = "hmac-key", value_name = "KEY.bin")]
    hmac_keys: Vec<PathBuf>,
    /// Every listed anchor must have a valid signature over the manifest's digest (e.g. the
    /// hybrid ECDSA P-384 + ML-DSA-65); without it any one suffices.
    #[arg(long)]
    require_all: bool,
}

impl AnchorArgs {
    fn policy(&self) -> AnchorPolicy {
        if self.require_all {
            AnchorPolicy::All
        } else {
            AnchorPolicy::AnyOne
        }
    }

    fn load(&self) -> Result<Vec<TrustAnchor>, ToolError> {
        let mut anchors = Vec::new();
        for p in &self.trust_anchors {
            anchors.push(keys::load_trust_anchor(p)?);
        }
        for p in &self.hmac_keys {
            anchors.push(TrustAnchor::Hmac256 {
                key: keys::load_secret(p)?,
                kid: None,
            });
        }
        if anchors.is_empty() {
            return Err(ToolError::Usage(
                "give at least one --trust-anchor (or --hmac-key)".into(),
            ));
        }
        Ok(anchors)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "suit-tool",
    version,
    about = "Create, sign, inspect and check SUIT envelopes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Generate a signing key pair: PREFIX.priv.pem (PKCS#8; for HSS-LMS the private state,
    /// which `sign` advances) and PREFIX.pub.pem (SPKI).
    Keygen {
        /// Key algorithm.
        #[arg(long, value_enum, default_value = "ES384")]
        alg: KeyAlg,
        /// HSS-LMS only: tree height (2^height signatures): 5, 10, 15, 20 or 25.
        #[arg(long, default_value_t = 10)]
        lms_height: u8,
        /// Output prefix.
        #[arg(long, value_name = "PREFIX")]
        out: String,
    },
    /// Create an envelope from a TOML spec, signed with each --key.
    Create {
        /// The spec file.
        #[arg(long, value_name = "SPEC.toml")]
        spec: PathBuf,
        /// Output envelope.
        #[arg(long, value_name = "OUT.suit")]
        out: PathBuf,
        /// Signing key (PKCS#8 PEM); repeatable; none gives an unsigned envelope.
        #[arg(long = "key", value_name = "PRIV.pem")]
        keys: Vec<PathBuf>,
        /// Also write each image's dm-verity slot image (image, padding, hash tree) to
        /// DIR/<image>.slot.
        #[arg(long, value_name = "DIR")]
        slot_dir: Option<PathBuf>,
    },
    /// Create an unsigned trust-anchor update envelope (add, replace, retire anchors; the
    /// new policy); sign it with the anchor set the devices hold now.
    Anchors(anchors::AnchorsArgs),
    /// Add a COSE_Sign1 signature to an envelope (its other signatures stay).
    Sign {
        /// Signing key (PKCS#8 PEM, or an HSS-LMS private state).
        #[arg(long, value_name = "PRIV.pem")]
        key: PathBuf,
        /// Signature algorithm (default: ES384 for P-384 keys, ES256 for P-256 keys, the
        /// fully specified one otherwise).
        #[arg(long, value_enum)]
        alg: Option<SignAlg>,
        /// Key id to put in the unprotected header.
        #[arg(long)]
        kid: Option<String>,
        /// Input envelope.
        input: PathBuf,
        /// Output envelope.
        #[arg(long, value_name = "OUT.suit")]
        out: PathBuf,
    },
    /// Check an envelope's authenticity (digest and signatures) only.
    Verify {
        #[command(flatten)]
        anchors: AnchorArgs,
        /// The envelope.
        envelope: PathBuf,
    },
    /// Show what an envelope contains (not verified).
    Inspect {
        /// The envelope.
        envelope: PathBuf,
        /// JSON output.
        #[arg(long, conflicts_with = "diag")]
        json: bool,
        /// CBOR diagnostic notation.
        #[arg(long)]
        diag: bool,
    },
    /// Run the SUIT update procedure on a simulated device.
    Process {
        /// The envelope.
        envelope: PathBuf,
        #[command(flatten)]
        anchors: AnchorArgs,
        /// The device's vendor id.
        #[arg(long, value_name = "UUID")]
        vendor_id: Option<String>,
        /// The device's class id.
        #[arg(long, value_name = "UUID")]
        class_id: Option<String>,
        /// The device's own id.
        #[arg(long, value_name = "UUID")]
        device_id: Option<String>,
        /// The slot every component occupies (component-slot condition).
        #[arg(long, default_value_t = 0)]
        slot: u64,
        /// Current content of component INDEX, also what a fetch for it retrieves; repeatable.
        #[arg(long = "image", value_name = "INDEX=FILE", value_parser = parse_image)]
        images: Vec<(usize, PathBuf)>,
        /// Lowest acceptable sequence number (anti-rollback floor).
        #[arg(long, default_value_t = 0)]
        sequence_floor: u64,
        /// The device's battery charge in mWh (minimum-battery); without it the device has
        /// no battery and the condition passes.
        #[arg(long, value_name = "N")]
        battery_mwh: Option<u64>,
        /// The device's application declines the update (update-authorized fails).
        #[arg(long)]
        not_authorized: bool,
        /// AES key-wrap KEK file (16 or 32 bytes) for encrypted payloads (a device may hold
        /// both a KEK and a recipient key).
        #[arg(long, value_name = "FILE")]
        kek: Option<PathBuf>,
        /// Recipient private key (PKCS#8 PEM, P-384 or P-256) for ECDH-ES encrypted payloads.
        #[arg(long, value_name = "PRIV.pem")]
        recipient_key: Option<PathBuf>,
        /// After an accepted update, write the content of component INDEX to FILE; repeatable.
        #[arg(long = "output", value_name = "INDEX=FILE", value_parser = parse_image)]
        outputs: Vec<(usize, PathBuf)>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Encrypt a payload for a device key or a KEK (AES-GCM, fresh content key and IV).
    Encrypt(crypt::EncryptArgs),
    /// Decrypt a payload with its encryption info (output only once complete and verified).
    Decrypt(crypt::DecryptArgs),
    /// Seal a fleet KEK to one device's key-agreement key for PROVISION (`suit-agent
    /// provision --kek-wrapped`): ECDH-ES+A256KW, A256GCM.
    WrapKek(crypt::WrapKekArgs),
    /// Check an approval token of the TA against the device's public key.
    VerifyToken(token::VerifyTokenArgs),
    /// Check a SUIT report signed by the TA against the device's public key.
    VerifyReport(token::VerifyReportArgs),
    /// The dm-verity root hash and hash tree of an image, as the TA approves it for boot.
    Verity(verity::VerityArgs),
}

fn parse_image(s: &str) -> Result<(usize, PathBuf), String> {
    let (index, file) = s.split_once('=').ok_or("expected INDEX=FILE")?;
    let index = index
        .parse()
        .map_err(|_| format!("{index:?} is not a component index"))?;
    Ok((index, PathBuf::from(file)))
}

/// Digest and size of a file, read in chunks (memory does not grow with the file).
pub fn digest_file(path: &Path, alg: DigestAlg) -> Result<(DigestValue, u64), ToolError> {
    let mut f = std::fs::File::open(path).map_err(|e| ToolError::io(path, e))?;
    let mut hasher = Hasher::new(alg);
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| ToolError::io(path, e))?;
        if n == 0 {
            return Ok((hasher.finalize(), size));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ToolError> {
    std::fs::read(path).map_err(|e| ToolError::io(path, e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ToolError> {
    std::fs::write(path, bytes).map_err(|e| ToolError::io(path, e))
}

fn uuid_or_nil(text: &Option<String>) -> Result<Uuid, ToolError> {
    let uuid = text.as_deref().map(parse_uuid).transpose()?;
    Ok(uuid.unwrap_or(Uuid([0; 16])))
}

/// Runs the tool; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_errors = matches!(cli.command, Cmd::Process { json: true, .. });
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json_errors {
                let category = match &e {
                    ToolError::Rejected(err) => err.category().as_str(),
                    _ => "resource",
                };
                let message = match &e {
                    ToolError::Rejected(err) => err.to_string(),
                    other => other.to_string(),
                };
                println!(
                    "{}",
                    json!({ "result": "rejected", "error": { "category": category, "message": message } })
                );
            } else {
                eprintln!("suit-tool: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(command: Cmd) -> Result<(), ToolError> {
    match command {
        Cmd::Keygen {
            alg,
            lms_height,
            out,
        } => {
            let (private, public) = keys::generate(alg, &out, lms_height)?;
            println!("wrote {private} (private, keep it secret) and {public}");
            Ok(())
        }
        Cmd::Create {
            spec,
            out,
            keys,
            slot_dir,
        } => create(&spec, &out, &keys, slot_dir.as_deref()),
        Cmd::Sign {
            key,
            alg,
            kid,
            input,
            out,
        } => {
            let mut signer = keys::load_signer(&key)?;
            let alg_id = alg
                .map(SignAlg::cose_id)
                .unwrap_or_else(|| signer.default_alg());
            let signed =
                signer.sign_envelope(&read(&input)?, alg_id, kid.as_deref().map(str::as_bytes))?;
            write(&out, &signed)?;
            println!("signed with {} → {}", alg_name(alg_id), out.display());
            Ok(())
        }
        Cmd::Verify { anchors, envelope } => {
            let policy = anchors.policy();
            let anchors = anchors.load()?;
            let bytes = read(&envelope)?;
            let env = Envelope::decode(&bytes)?;
            let auth = env.auth.as_ref().ok_or(Error::BareManifest)?;
            let ok = auth.authenticate_with(env.manifest.encoding, &anchors, policy)?;
            if policy == AnchorPolicy::All {
                println!(
                    "authentic: every one of the {} trust anchors signed",
                    anchors.len()
                );
            }
            // The signature covers severed members only through their digests in the manifest.
            let members = Manifest::check_severed_members(&env)?;
            println!(
                "authentic: block {} ({}) verified with trust anchor {} ({})",
                ok.block,
                alg_name(ok.alg),
                ok.anchor + 1,
                anchors[ok.anchor].describe()
            );
            for (name, member) in members {
                match member {
                    SeveredMember::Inline => {}
                    SeveredMember::Present => {
                        println!("severed {name}: present, matches its digest in the manifest")
                    }
                    SeveredMember::Stripped => println!("severed {name}: absent (stripped)"),
                }
            }
            Ok(())
        }
        Cmd::Inspect {
            envelope,
            json,
            diag,
        } => {
            let bytes = read(&envelope)?;
            if diag {
                print!(
                    "{}",
                    crate::diag::to_diag(&bytes).map_err(|e| ToolError::Rejected(Error::Io(e)))?
                );
            } else if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&inspect::to_json(&bytes)?).unwrap_or_default()
                );
            } else {
                print!("{}", inspect::to_text(&bytes)?);
            }
            Ok(())
        }
        Cmd::Process {
            envelope,
            anchors,
            vendor_id,
            class_id,
            device_id,
            slot,
            images,
            sequence_floor,
            battery_mwh,
            not_authorized,
            kek,
            recipient_key,
            outputs,
            json,
        } => {
            let decryption_keys = crypt::device_keys(kek.as_deref(), recipient_key.as_deref())?;
            let policy = anchors.policy();
            let anchors = anchors.load()?;
            let identity = DeviceIdentity {
                vendor_id: uuid_or_nil(&vendor_id)?,
                class_id: uuid_or_nil(&class_id)?,
                device_id: device_id.as_deref().map(parse_uuid).transpose()?,
            };
            let bytes = read(&envelope)?;
            let authentic = Manifest::authenticate_with(&bytes, &anchors, policy)?;
            authentic.manifest.check_sequence_number(sequence_floor)?;
            let mut device = device::SimulatedDevice::new(
                identity,
                slot,
                images.into_iter().collect::<BTreeMap<_, _>>(),
            )
            .with_decryption_keys(decryption_keys)
            .with_facts(DeviceFacts {
                battery_mwh,
                authorized: !not_authorized,
            });
            Processor::new(&authentic, &mut device).run(&Section::UPDATE)?;
            for (index, path) in &outputs {
                device.export(*index, path)?;
            }
            let seq = authentic.manifest.sequence_number;
            if json {
                println!(
                    "{}",
                    json!({
                        "result": "accepted",
                        "sequence-number": seq,
                        "authenticated-by": alg_name(authentic.authenticated.alg),
                    })
                );
            } else {
                println!(
                    "accepted: manifest sequence number {seq}, authenticated by {}",
                    alg_name(authentic.authenticated.alg)
                );
            }
            Ok(())
        }
        Cmd::Anchors(args) => anchors::run(args),
        Cmd::Encrypt(args) => crypt::encrypt(args),
        Cmd::Decrypt(args) => crypt::decrypt(args),
        Cmd::WrapKek(args) => crypt::wrap_kek(args),
        Cmd::VerifyToken(args) => token::verify_token(args),
        Cmd::VerifyReport(args) => token::verify_report(args),
        Cmd::Verity(args) => verity::run(args),
    }
}

/// The unsigned envelope of a prepared spec, its integrated payloads read from their files.
fn build(prepared: &spec::Prepared) -> Result<Vec<u8>, ToolError> {
    let encoded = encode_manifest(&prepared.manifest(), prepared.digest_alg());
    let mut integrated = Vec::new();
    for (key, path) in prepared.integrated() {
        integrated.push((key.clone(), read(path)?));
    }
    Ok(build_envelope(&encoded, &integrated, prepared.digest_alg()))
}

fn create(
    spec_path: &Path,
    out: &Path,
    key_paths: &[PathBuf],
    slot_dir: Option<&Path>,
) -> Result<(), ToolError> {
    let base = spec_path.parent().unwrap_or(Path::new("."));
    let prepared = spec::Spec::load(spec_path)?.prepare(base)?;
    let manifest = prepared.manifest();
    let mut envelope = build(&prepared)?;
    for k in key_paths {
        let mut signer = keys::load_signer(k)?;
        envelope = signer.sign_envelope(&envelope, signer.default_alg(), None)?;
    }
    write(out, &envelope)?;
    if let Some(dir) = slot_dir {
        verity::write_slot_images(dir, prepared.plaintext_images())?;
    }
    for (path, size) in prepared.ciphertexts() {
        println!("wrote ciphertext {} ({size} bytes)", path.display());
    }
    println!(
        "wrote {} ({} bytes, sequence number {}, {} signature(s))",
        out.display(),
        envelope.len(),
        manifest.sequence_number,
        key_paths.len()
    );
    Ok(())
}
