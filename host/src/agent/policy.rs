//! The device's own say in an update (config `[policy]`): the facts the agent reports to the
//! TA with LOAD_MANIFEST, from which the TA answers SUIT condition-minimum-battery (26) and
//! condition-update-authorized (27).
//!
//! - **Authorization hook** (`authorize`): a command run once per `install` / `check` before
//!   LOAD_MANIFEST, with the update's facts in its environment (below). Exit status 0
//!   authorises the update, 1 declines it (the first line of its standard output, if any, is
//!   the reason shown); any other status, a signal, output that is not UTF-8 or longer than
//!   [`MAX_HOOK_OUTPUT`], or running longer than `authorize-timeout` is a [`PolicyError`]
//!   and the update stops before the TA sees it. Without a hook the update is authorised.
//! - **Battery** (`battery`): a file holding the charge in µWh, the unit of the kernel's
//!   `/sys/class/power_supply/*/energy_now`; the TA gets it in mWh, the unit of
//!   suit-parameter-minimum-battery. Without it the device has no battery and
//!   minimum-battery passes. A configured file that cannot be read or parsed is an error.
//!
//! The hook's environment: `SUIT_SEQUENCE_NUMBER`, `SUIT_COMPONENTS` (one component id per
//! line, as `suit-agent` prints them, e.g. `['rootfs']`), `SUIT_SLOT` (`A` or `B`, the target),
//! `SUIT_SOURCE` (the envelope's URL or path), `SUIT_BATTERY_MWH` (when known), and, when the
//! manifest has text, `SUIT_MANIFEST_DESCRIPTION` and `SUIT_UPDATE_DESCRIPTION`. These come
//! from the envelope **before** the TA authenticated it: the same bytes then go to
//! LOAD_MANIFEST, so for an authentic envelope they are what the vendor signed, and an
//! envelope that is not authentic is refused whatever the hook said. An envelope the agent
//! cannot decode is declined without running the hook (the TA refuses it anyway).
//!
//! **What these conditions guarantee.** The REE is untrusted: root in Linux can report any
//! battery level and any authorization. The conditions protect against accidents (an update
//! started on a nearly empty battery) and carry the device owner's policy (a user or an
//! application that declines an update now); they are no defence against an attacker, which
//! authentication, anti-rollback and the TA's approval are. The TA evaluates both conditions
//! itself, where the manifest places them, so the refusal is a SUIT processing failure with
//! its section and component in the report; the agent pre-checks nothing. A manifest without
//! the condition does not ask: the hook's answer then changes nothing.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use suit_shared::abi::DeviceFacts;
use suit_shared::envelope::Envelope;
use suit_shared::manifest::Manifest;

use super::config::PolicyConfig;
use super::Slot;

/// Most bytes the hook may write to its standard output.
pub const MAX_HOOK_OUTPUT: usize = 4096;
/// Longest text the hook gets in one environment variable.
const MAX_TEXT: usize = 1024;

/// Why the device's facts could not be established.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The hook could not be started.
    #[error("authorization hook {program}: cannot run it: {source}")]
    HookSpawn {
        /// The hook's program.
        program: String,
        /// The error.
        source: std::io::Error,
    },
    /// The hook ran longer than allowed and was killed.
    #[error("authorization hook {program} did not answer within {timeout:?}; it was killed")]
    HookTimeout {
        /// The hook's program.
        program: String,
        /// The limit.
        timeout: Duration,
    },
    /// The hook ended with a status that is neither 0 (authorised) nor 1 (declined).
    #[error("authorization hook {program} failed ({status}); it must exit 0 (authorised) or 1 (declined)")]
    HookFailed {
        /// The hook's program.
        program: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The hook's output is not a reason the agent can show.
    #[error("authorization hook {program}: unusable output: {reason}")]
    HookOutput {
        /// The hook's program.
        program: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The battery file could not be read.
    #[error("battery {}: cannot read it: {source}", path.display())]
    BatteryRead {
        /// The configured file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The battery file does not hold a charge in µWh.
    #[error("battery {}: {content:?} is not a charge in µWh (a decimal integer)", path.display())]
    BatteryValue {
        /// The configured file.
        path: PathBuf,
        /// What it holds (truncated).
        content: String,
    },
}

/// The hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// Exit status 0 (or no hook).
    Authorized,
    /// Exit status 1, with the reason the hook printed (may be empty).
    Declined(String),
}

/// What the agent tells the TA, and what the hook said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// For LOAD_MANIFEST.
    pub device: DeviceFacts,
    /// The hook's answer, for the agent's message when the TA refuses.
    pub authorization: Authorization,
}

/// The update as the hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    /// The envelope, not yet authenticated.
    pub envelope: &'a [u8],
    /// The slot it would be installed into.
    pub slot: Slot,
    /// Where it came from.
    pub source: &'a str,
}

/// Establishes the device's facts for `update` under `config`.
pub fn facts(config: &PolicyConfig, update: Update<'_>) -> Result<Facts, PolicyError> {
    let battery_mwh = config.battery.as_deref().map(read_battery).transpose()?;
    let authorization = match &config.authorize {
        None => Authorization::Authorized,
        Some(command) => match hook_environment(update, battery_mwh) {
            Some(env) => run_hook(command, &env, config.authorize_timeout)?,
            None => Authorization::Declined(String::from(
                "the envelope does not decode; the authorization hook was not asked",
            )),
        },
    };
    Ok(Facts {
        device: DeviceFacts {
            battery_mwh,
            authorized: authorization == Authorization::Authorized,
        },
        authorization,
    })
}

/// The battery charge in mWh from a file in µWh.
fn read_battery(path: &Path) -> Result<u64, PolicyError> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64).read_to_string(&mut text))
        .map_err(|source| PolicyError::BatteryRead {
            path: path.to_path_buf(),
            source,
        })?;
    let micro_wh: u64 = text.trim().parse().map_err(|_| PolicyError::BatteryValue {
        path: path.to_path_buf(),
        content: text.trim().chars().take(32).collect(),
    })?;
    Ok(micro_wh / 1000)
}

/// The hook's environment, or `None` when the envelope does not decode.
fn hook_environment(update: Update<'_>, battery_mwh: Option<u64>) -> Option<Vec<(String, String)>> {
    let envelope = Envelope::decode(update.envelope).ok()?;
    let manifest = Manifest::decode_unauthenticated(&envelope).ok()?;
    let components: Vec<String> = manifest.components.iter().map(|c| c.to_string()).collect();
    let mut env = vec![
        (
            "SUIT_SEQUENCE_NUMBER".to_string(),
            manifest.sequence_number.to_string(),
        ),
        ("SUIT_COMPONENTS".to_string(), components.join("\n")),
        ("SUIT_SLOT".to_string(), update.slot.to_string()),
        ("SUIT_SOURCE".to_string(), text_value(update.source)),
    ];
    if let Some(mwh) = battery_mwh {
        env.push(("SUIT_BATTERY_MWH".to_string(), mwh.to_string()));
    }
    let language = manifest.text.get().and_then(|t| t.languages.first());
    for (key, name) in [
        (1, "SUIT_MANIFEST_DESCRIPTION"),
        (2, "SUIT_UPDATE_DESCRIPTION"),
    ] {
        if let Some(text) = language.and_then(|(_, l)| l.manifest.get(&key)) {
            env.push((name.to_string(), text_value(text)));
        }
    }
    Some(env)
}

/// `text` as an environment value: without NUL (which cannot travel), at most [`MAX_TEXT`]
/// bytes.
fn text_value(text: &str) -> String {
    let mut value: String = text.chars().filter(|&c| c != '\0').collect();
    if value.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

/// Runs the hook (no shell) with `env` added to the agent's environment.
fn run_hook(
    command: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Authorization, PolicyError> {
    let (program, args) = match command.split_first() {
        Some(split) => split,
        // The config parser refuses an empty command.
        None => return Ok(Authorization::Authorized),
    };
    let name = program.clone();
    // Its own process group, so that whatever it started goes with it when it is killed.
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| PolicyError::HookSpawn {
            program: name.clone(),
            source,
        })?;
    // Read the output beside the wait, so that a chatty hook cannot block on a full pipe;
    // one byte more than allowed tells that it wrote too much.
    let (sender, output) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let result = stdout
                .take(MAX_HOOK_OUTPUT as u64 + 1)
                .read_to_end(&mut out);
            // The receiver is gone only when the agent gave up on the output.
            let _ = sender.send(result.map(|_| out));
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                return Err(PolicyError::HookTimeout {
                    program: name,
                    timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                return Err(PolicyError::HookSpawn {
                    program: name,
                    source,
                })
            }
        }
    };
    let bad = |reason| PolicyError::HookOutput {
        program: name.clone(),
        reason,
    };
    // A process the hook left behind may hold its output open: wait no longer than the
    // timeout allows (and a moment, for the pipe to drain).
    let grace = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(200);
    let output = match output.recv_timeout(grace) {
        Ok(Ok(out)) => out,
        Ok(Err(_)) => return Err(bad("its standard output could not be read")),
        Err(_) => {
            kill_group(&mut child);
            return Err(bad(
                "its standard output stayed open after it exited (a process left running?)",
            ));
        }
    };
    if output.len() > MAX_HOOK_OUTPUT {
        return Err(bad("more than 4096 bytes"));
    }
    let text = String::from_utf8(output).map_err(|_| bad("not UTF-8"))?;
    match status.code() {
        Some(0) => Ok(Authorization::Authorized),
        Some(1) => Ok(Authorization::Declined(
            text.lines().next().unwrap_or_default().trim().to_string(),
        )),
        _ => Err(PolicyError::HookFailed {
            program: name,
            status,
        }),
    }
}

/// Kills the hook and every process of its group, and reaps it.
fn kill_group(child: &mut Child) {
    let group = rustix::process::Pid::from_child(child);
    // Already gone is fine: there is nothing left to stop.
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.kill();
    let _ = child.wait();
}
