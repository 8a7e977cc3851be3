//! The `suit-agent` command line (DESIGN.md §8). Exit codes: 0 ok, 1 rejected or failed,
//! 2 usage or configuration error, 3 nothing to do, 4 alarm: `boot-check` found that the TA
//! no longer holds the install committed for the running trial slot (see
//! [`AgentError::InstallVanished`]); the line `SUIT-AGENT: ALARM: ...` says so on the console.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use suit_shared::abi::{Info, InstallState, LastOutcome, Provisioning, SealedKek};
use suit_shared::error::Uuid;

use super::config::{self, Config};
use super::fetch::progress;
use super::update::{Agent, AgentError, Applied, BootCheck};
use crate::common::{class_uuid, hex, parse_nonce, parse_uuid, vendor_uuid, Nonce};
use crate::tee::simulator::{SimulatorConfig, SimulatorSession};
use crate::tee::Tee;

/// Which TEE backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TeeKind {
    /// The SUIT TA in OP-TEE (through libteec).
    Optee,
    /// The TA core in-process: NOT A TEE, development and tests only.
    Simulator,
}

#[derive(Debug, Parser)]
#[command(
    name = "suit-agent",
    version,
    about = "Device update agent: installs SUIT updates approved by the OP-TEE TA"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = config::DEFAULT_PATH, value_name = "FILE")]
    config: PathBuf,
    /// TEE backend.
    #[arg(long, global = true, value_enum, default_value = "optee")]
    tee: TeeKind,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show the TA's identity, device key, floors and install state.
    Info {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Install the envelope at SOURCE (URL or file) into the inactive slot; a reboot starts
    /// its trial.
    Install {
        /// http(s):// or file:// URL, or a path (e.g. on a USB stick).
        source: String,
        /// A verifier's nonce (hex, at most 64 bytes) for the approval tokens and the SUIT
        /// report of this install.
        #[arg(long, value_name = "HEX", value_parser = parse_nonce)]
        nonce: Option<Nonce>,
    },
    /// Ask whether SOURCE (default: the channel) offers an applicable newer update; changes
    /// nothing. Exit 0 if it does, 3 if not.
    Check {
        /// Envelope URL or path; default: channel-url from the configuration.
        source: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show the update in progress, the last outcome and the boot state.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Run the health check and confirm the running trial slot (raises the floors).
    Confirm {
        /// A verifier's nonce (hex, at most 64 bytes) for the SUIT report.
        #[arg(long, value_name = "HEX", value_parser = parse_nonce)]
        nonce: Option<Nonce>,
    },
    /// Drop the pending or unfinished install; floors unchanged.
    Rollback,
    /// Early boot: confirm a healthy trial boot, roll back after a failed one.
    BootCheck {
        /// A verifier's nonce (hex, at most 64 bytes) for the SUIT report.
        #[arg(long, value_name = "HEX", value_parser = parse_nonce)]
        nonce: Option<Nonce>,
    },
    /// Poll the channel and install updates as they appear.
    Daemon,
    /// Boot stage: ask the TA what SLOT may boot; print the dm-verity table of its component
    /// (exit 0), or the TA's refusal (exit 1).
    BootVerify {
        /// The slot about to be mounted: A or B.
        #[arg(long)]
        slot: super::Slot,
        /// JSON output (every component), instead of the table of the first.
        #[arg(long)]
        json: bool,
    },
    /// Factory: install the envelope at SOURCE into SLOT and confirm it at once (no trial
    /// boot), so that the TA approves the factory image for boot.
    FactoryInstall {
        /// http(s):// or file:// URL, or a path.
        source: String,
        /// The slot to install into: A or B.
        #[arg(long, default_value = "A")]
        slot: super::Slot,
    },
    /// Factory provisioning, once: fleet KEK and identity.
    Provision {
        /// The fleet KEK sealed to this device's key-agreement key (`suit-tool wrap-kek`);
        /// the KEK itself never passes through Linux.
        #[arg(long, value_name = "FILE")]
        kek_wrapped: Option<PathBuf>,
        /// Key id of the KEK, as the manifests name it.
        #[arg(long, requires = "kek_wrapped")]
        kid: Option<String>,
        /// Device id (UUID).
        #[arg(long, value_name = "UUID")]
        device_id: Option<String>,
        /// Vendor id override (UUID).
        #[arg(long, value_name = "UUID")]
        vendor_id: Option<String>,
        /// Class id override (UUID).
        #[arg(long, value_name = "UUID")]
        class_id: Option<String>,
    },
}

/// Errors before or around an agent operation: usage and configuration (exit 2), or the
/// operation's own.
enum Failure {
    Usage(String),
    Agent(AgentError),
}

impl From<AgentError> for Failure {
    fn from(e: AgentError) -> Self {
        Failure::Agent(e)
    }
}

fn open_tee(kind: TeeKind, config: &Config) -> Result<Box<dyn Tee>, Failure> {
    match kind {
        TeeKind::Optee => open_optee(),
        TeeKind::Simulator => {
            let sim = config.simulator.as_ref().ok_or_else(|| {
                Failure::Usage(
                    "--tee simulator needs a [simulator] section in the configuration".into(),
                )
            })?;
            let mut anchors = Vec::new();
            for p in &sim.trust_anchors {
                anchors.push(
                    crate::keys::load_trust_anchor(p).map_err(|e| Failure::Usage(e.to_string()))?,
                );
            }
            let state_dir = sim
                .state_dir
                .clone()
                .unwrap_or_else(|| config.state_dir.join("simulated-ta"));
            let mut sc = SimulatorConfig::new(state_dir, anchors);
            sc.vendor_id = vendor_uuid(&sim.vendor);
            sc.class_id = class_uuid(sc.vendor_id, &sim.class);
            let session = SimulatorSession::connect(sc).map_err(|e| Failure::Agent(e.into()))?;
            Ok(Box::new(session))
        }
    }
}

#[cfg(feature = "optee")]
fn open_optee() -> Result<Box<dyn Tee>, Failure> {
    let session = crate::tee::optee::OpteeSession::open(suit_shared::abi::DEFAULT_TA_UUID)
        .map_err(|e| Failure::Agent(e.into()))?;
    Ok(Box::new(session))
}

#[cfg(not(feature = "optee"))]
fn open_optee() -> Result<Box<dyn Tee>, Failure> {
    Err(Failure::Usage(
        "this suit-agent was built without OP-TEE support (cargo feature `optee`); use --tee simulator for development".into(),
    ))
}

fn uuid_arg(text: &Option<String>) -> Result<Option<Uuid>, Failure> {
    text.as_deref()
        .map(parse_uuid)
        .transpose()
        .map_err(|e| Failure::Usage(e.to_string()))
}

fn info_json(info: &Info) -> Value {
    let install = match &info.install {
        InstallState::Idle => json!("idle"),
        InstallState::Trial(p) => json!({
            "state": "trial",
            "component-slot": p.slot,
            "sequence-number": p.sequence_number,
            "manifest-digest": hex(p.manifest_digest.as_bytes()),
            "components": p.components.iter().map(|c| json!({
                "id": c.component_id.to_string(),
                "size": c.size,
                "digest": hex(c.digest.as_bytes()),
            })).collect::<Vec<_>>(),
        }),
    };
    json!({
        "abi-version": info.abi_version,
        "max-chunk": info.max_chunk,
        "max-envelope": info.max_envelope,
        "vendor-id": info.vendor_id.to_string(),
        "class-id": info.class_id.to_string(),
        "device-id": info.device_id.map(|d| d.to_string()),
        "device-public-key": hex(&info.device_public_key),
        "device-public-key-pem": device_key_pem(&info.device_public_key),
        "signing-public-key": hex(&info.signing_public_key),
        "signing-public-key-pem": device_key_pem(&info.signing_public_key),
        "storage": info.storage.as_str(),
        "provisioned": info.provisioned,
        "kek-present": info.kek_present,
        "floors": info.floors.iter().map(|(id, f)| json!({
            "component": id.to_string(), "floor": f
        })).collect::<Vec<_>>(),
        "install": install,
        "last-outcome": match info.last_outcome {
            LastOutcome::None => "none",
            LastOutcome::Confirmed => "confirmed",
            LastOutcome::RolledBack => "rolled-back",
        },
        "algorithms": {
            "digest": info.algorithms.digest,
            "signature": info.algorithms.signature,
            "content-encryption": info.algorithms.content_encryption,
            "key-distribution": info.algorithms.key_distribution,
        },
    })
}

/// A device public key (SEC1) as SPKI PEM.
/// The SPKI PEM of the key-agreement key: P-384 (SEC1), or X25519 (32 bytes).
fn device_key_pem(key: &[u8]) -> Option<String> {
    use p384::pkcs8::{EncodePublicKey, LineEnding};
    if let Ok(x25519) = <&[u8; 32]>::try_from(key) {
        return crate::keys::x25519_public_pem(x25519);
    }
    let key = p384::PublicKey::from_sec1_bytes(key).ok()?;
    key.to_public_key_pem(LineEnding::LF).ok()
}

fn print_info(info: &Info) {
    println!(
        "TA ABI version {} (chunks up to {} bytes, envelopes up to {} bytes)",
        info.abi_version, info.max_chunk, info.max_envelope
    );
    println!("secure storage: {}", info.storage.as_str());
    println!("vendor id {}  class id {}", info.vendor_id, info.class_id);
    if let Some(d) = info.device_id {
        println!("device id {d}");
    }
    println!(
        "provisioned: {} (fleet KEK {})",
        info.provisioned,
        if info.kek_present {
            "present"
        } else {
            "absent"
        }
    );
    for (id, floor) in &info.floors {
        println!("anti-rollback floor of {}: {floor}", id.clone());
    }
    if info.floors.is_empty() {
        println!("anti-rollback floors: none yet (no update confirmed)");
    }
    match &info.install {
        InstallState::Idle => println!("install state: idle"),
        InstallState::Trial(p) => println!(
            "install state: sequence {} committed to component-slot {}, awaiting its trial boot",
            p.sequence_number, p.slot
        ),
    }
    if let Some(pem) = device_key_pem(&info.device_public_key) {
        let curve = if info.device_public_key.len() == 32 {
            "X25519"
        } else {
            "P-384"
        };
        print!("device public key ({curve}, encrypt payloads and the fleet KEK to it):\n{pem}");
    }
    if let Some(pem) = device_key_pem(&info.signing_public_key) {
        print!("device signing key (P-384, verify tokens and reports with it):\n{pem}");
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config = Config::load(&cli.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let tee = open_tee(cli.tee, &config)?;
    let progress: Box<dyn FnMut() -> Box<dyn progress::Progress>> = Box::new(progress::for_stderr);
    let mut agent = Agent::new(config.clone(), tee, progress)?;
    match cli.command {
        Cmd::Info { json } => {
            let info = agent.info()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&info_json(&info)).unwrap_or_default()
                );
            } else {
                print_info(&info);
            }
        }
        Cmd::Install { source, nonce } => {
            agent.set_nonce(nonce.map(|n| n.0));
            let installed = match agent.install_or_rotate(&source)? {
                Applied::Installed(installed) => installed,
                Applied::Anchors { sequence_number } => {
                    println!("SUIT-AGENT: trust-anchor update {sequence_number} applied by the TA");
                    return Ok(());
                }
            };
            for (id, size) in &installed.components {
                println!("wrote {id} ({size} bytes) to slot {}", installed.slot);
            }
            println!(
                "SUIT-AGENT: installed sequence {} into slot {}; reboot to start its trial",
                installed.sequence_number, installed.slot
            );
        }
        Cmd::Check { source, json } => {
            let source = match source {
                Some(s) => s,
                None => agent
                    .config()
                    .channel_url
                    .as_ref()
                    .map(|u| u.to_string())
                    .ok_or_else(|| {
                        Failure::Usage("no SOURCE given and no channel-url configured".into())
                    })?,
            };
            let plan = agent.check(&source)?;
            if json {
                println!(
                    "{}",
                    json!({ "update": true, "sequence-number": plan.sequence_number, "components": plan.items.len() })
                );
            } else {
                println!(
                    "update available: sequence number {} ({} component(s))",
                    plan.sequence_number,
                    plan.items.len()
                );
            }
        }
        Cmd::Status { json } => {
            let journal = agent.journal()?;
            let (where_, boot) = agent.boot_state()?;
            let booted = agent.booted_slot().ok();
            let info = agent.info()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "booted-slot": booted.map(|s| s.name()),
                        "boot": { "backend": where_, "order": boot.order_text(),
                                  "a-left": boot.attempts_left(super::Slot::A), "b-left": boot.attempts_left(super::Slot::B) },
                        "update": journal.update,
                        "last-outcome": journal.last_outcome,
                        "ta": info_json(&info),
                    }))
                    .unwrap_or_default()
                );
            } else {
                println!("booted slot: {}", booted.map_or("unknown", |s| s.name()));
                println!(
                    "boot control ({where_}): order {}, A left {}, B left {}",
                    boot.order_text(),
                    boot.attempts_left(super::Slot::A),
                    boot.attempts_left(super::Slot::B)
                );
                match &journal.update {
                    Some(u) => println!(
                        "update in progress: sequence {} to slot {}, step {:?}, from {}",
                        u.sequence_number, u.target_slot, u.step, u.source
                    ),
                    None => println!("no update in progress"),
                }
                if let Some(o) = &journal.last_outcome {
                    println!(
                        "last update: sequence {} slot {}: {:?}{}",
                        o.sequence_number,
                        o.slot,
                        o.result,
                        o.message
                            .as_deref()
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    );
                }
                print_info(&info);
            }
        }
        Cmd::Confirm { nonce } => {
            agent.set_nonce(nonce.map(|n| n.0));
            report_boot_check(agent.confirm()?)
        }
        Cmd::BootCheck { nonce } => {
            agent.set_nonce(nonce.map(|n| n.0));
            report_boot_check(agent.boot_check()?)
        }
        Cmd::Rollback => println!("SUIT-AGENT: {}", agent.rollback()?),
        Cmd::Daemon => agent.daemon()?,
        Cmd::BootVerify { slot, json } => {
            let approval = agent.boot_verify(slot)?;
            if json {
                let components: Vec<Value> = approval
                    .components
                    .iter()
                    .map(|(id, path, v)| {
                        json!({
                            "id": id.to_string(),
                            "device": path.display().to_string(),
                            "root-hash": hex(&v.root),
                            "salt": hex(&v.salt),
                            "data-blocks": v.data_blocks,
                            "hash-offset": v.hash_offset(),
                            "dm-table": super::verity::dm_table(v, path),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "slot": approval.slot.name(),
                        "sequence-number": approval.sequence_number,
                        "status": approval.status.as_str(),
                        "components": components,
                    }))
                    .unwrap_or_default()
                );
            } else {
                let (_, path, verity) = approval
                    .components
                    .first()
                    .ok_or_else(|| Failure::Usage("the TA's approval names no component".into()))?;
                eprintln!(
                    "suit-agent: slot {slot} approved by the TA: sequence {}, {}",
                    approval.sequence_number,
                    approval.status.as_str()
                );
                println!("{}", super::verity::dm_table(verity, path));
            }
        }
        Cmd::FactoryInstall { source, slot } => {
            let installed = agent.install_into(&source, Some(slot))?;
            println!(
                "SUIT-AGENT: factory: installed sequence {} into slot {slot}",
                installed.sequence_number
            );
            // CONFIRM must come from another session than COMMIT.
            drop(agent);
            let tee = open_tee(cli.tee, &config)?;
            let progress: Box<dyn FnMut() -> Box<dyn progress::Progress>> =
                Box::new(progress::for_stderr);
            let mut agent = Agent::new(config.clone(), tee, progress)?;
            report_boot_check(agent.factory_confirm(slot)?);
        }
        Cmd::Provision {
            kek_wrapped,
            kid,
            device_id,
            vendor_id,
            class_id,
        } => {
            let kek = match kek_wrapped {
                Some(path) => Some(SealedKek {
                    sealed: std::fs::read(&path)
                        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
                    kid: kid.unwrap_or_default().into_bytes(),
                }),
                None => None,
            };
            let p = Provisioning {
                kek,
                vendor_id: uuid_arg(&vendor_id)?,
                class_id: uuid_arg(&class_id)?,
                device_id: uuid_arg(&device_id)?,
            };
            agent.provision(&p)?;
            println!("SUIT-AGENT: provisioned; further provisioning is locked");
        }
    }
    Ok(())
}

fn report_boot_check(result: BootCheck) {
    match result {
        BootCheck::Idle(slot) => {
            println!("SUIT-AGENT: boot-check: slot {slot} running, nothing pending; marked good")
        }
        BootCheck::Confirmed {
            slot,
            sequence_number,
        } => {
            println!("SUIT-AGENT: confirmed slot {slot}: sequence {sequence_number} is the new anti-rollback floor")
        }
        BootCheck::RolledBack { failed, running } => {
            println!("SUIT-AGENT: rolled back: the trial of slot {failed} failed, slot {running} runs; floors unchanged")
        }
        BootCheck::TrialPending(slot) => {
            println!("SUIT-AGENT: an install waits for its trial boot of slot {slot}: reboot")
        }
    }
}

/// Runs the agent; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("suit-agent: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Agent(e)) => {
            let code = e.exit_code();
            if code == 3 {
                println!("SUIT-AGENT: nothing to do: {e}");
            } else if code == 4 {
                println!("SUIT-AGENT: ALARM: {e}");
            } else {
                eprintln!("suit-agent: error [{}]: {e}", e.category());
                println!("SUIT-AGENT: FAILED [{}]: {e}", e.category());
            }
            ExitCode::from(code)
        }
    }
}
