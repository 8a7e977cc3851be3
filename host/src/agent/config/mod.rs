//! The agent's configuration file, `/etc/suit-agent/config.toml` by default.
//!
//! Parsing is strict: unknown fields, wrong types, out-of-range values and relative paths are
//! rejected, and every error names the file, the line and column, and the field (for example
//! `config.toml:14:19: http.connect-timeout: invalid duration "10 parsecs"`). Everything except
//! the component map has a default. `host/examples/agent-config.toml` is a complete, commented
//! example.
//!
//! ```toml
//! channel-url = "https://updates.example.com/gateway/stable.suit"
//!
//! [[component]]
//! id = ["rootfs"]                                  # SUIT component identifier
//! slot-a = { path = "/dev/disk/by-partlabel/rootfs-a" }   # component-slot 0 by default
//! slot-b = { path = "/dev/disk/by-partlabel/rootfs-b" }   # component-slot 1 by default
//!
//! [boot]
//! backend = "file"                                 # or "uboot", see [`BootConfig`]
//! path = "/data/boot/bootstate"
//! ```

use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use suit_shared::component::ComponentId;
use url::Url;

mod boot;
mod component;
mod ddi;
mod fields;
#[cfg(test)]
mod tests;

pub use boot::{BootConfig, EnvLocation, FileBootConfig, UBootEnvConfig};
use component::components;
pub use component::{ComponentConfig, SlotTarget};
pub use ddi::DdiConfig;
use fields::{
    absolute_path, absolute_paths, channel_url, command, duration, optional_absolute_path,
    optional_command, report_url,
};

/// Where the agent reads its configuration unless told otherwise (`--config`).
pub const DEFAULT_PATH: &str = "/etc/suit-agent/config.toml";

/// Where the QEMU image's `/init` (and any early init following the same contract) writes
/// the slot it booted: the default of `booted-slot-file`.
pub const BOOTED_SLOT_FILE: &str = "/run/suit/booted-slot";

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// URL of the update channel: the envelope of the latest release, which `daemon` and
    /// `check` fetch (`http://`, `https://` or `file://`). Without it only `install SOURCE`
    /// updates the device.
    #[serde(default, deserialize_with = "channel_url")]
    pub channel_url: Option<Url>,
    /// A hawkBit DDI fleet server the daemon polls instead of `channel-url` (`[ddi]`).
    #[serde(default)]
    pub ddi: Option<DdiConfig>,
    /// How long the daemon waits between two polls of the channel. Default `1h`.
    #[serde(default = "default_poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// Directory of the agent's persistent state (its journal). Must survive reboots.
    /// Default `/data/suit-agent`.
    #[serde(default = "default_state_dir", deserialize_with = "absolute_path")]
    pub state_dir: PathBuf,
    /// Directory where envelopes and payloads are staged before and while the TA approves
    /// them; needs room for the largest update. Default `/data/suit-agent/staging`.
    #[serde(default = "default_staging_dir", deserialize_with = "absolute_path")]
    pub staging_dir: PathBuf,
    /// Bytes per chunk streamed through the TA, 4 KiB to 1 MiB. Default 512 KiB (the shared
    /// buffer size OP-TEE always allows); the TA may ask for less.
    #[serde(default)]
    pub chunk_size: ChunkSize,
    /// HTTP(S) client settings: trust roots and timeouts.
    #[serde(default)]
    pub http: HttpConfig,
    /// How downloads are retried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// How the agent switches and confirms slots. Default: the text file
    /// `/data/boot/bootstate`.
    #[serde(default)]
    pub boot: BootConfig,
    /// The updatable components (`[[component]]` tables), at least one: which SUIT component
    /// goes where in each slot.
    #[serde(rename = "component", deserialize_with = "components")]
    pub components: Vec<ComponentConfig>,
    /// Command run by `boot-check` on a trial boot; exit status 0 means healthy.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// The device's say in an update: authorization hook and battery (`[policy]`). Default:
    /// no hook (every update authorised), no battery (minimum-battery passes).
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Where the agent posts update reports (`http://` or `https://`). Optional.
    #[serde(default, deserialize_with = "report_url")]
    pub report_url: Option<Url>,
    /// Command the daemon runs to reboot into a newly installed slot (no shell); without it
    /// the daemon only logs that a reboot is due.
    #[serde(default, deserialize_with = "optional_command")]
    pub reboot_command: Option<Vec<String>>,
    /// File naming the slot the bootloader started (`A` or `B`); when absent the kernel
    /// command line (`rauc.slot=` / `suit.slot=`) tells. Default `/run/suit/booted-slot`.
    #[serde(
        default = "default_booted_slot_file",
        deserialize_with = "absolute_path"
    )]
    pub booted_slot_file: PathBuf,
    /// Settings of the TEE simulator (`--tee simulator`), used for development and tests
    /// only; ignored with OP-TEE, whose trust anchors and identity are built into the TA.
    #[serde(default)]
    pub simulator: Option<SimulatorSettings>,
}

/// The simulated TA's trust anchors and identity (`[simulator]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SimulatorSettings {
    /// Public keys (SPKI PEM, absolute paths) that may sign envelopes.
    #[serde(deserialize_with = "absolute_paths")]
    pub trust_anchors: Vec<PathBuf>,
    /// Vendor name (vendor id = UUID5(DNS namespace, name)). Default `example.com`.
    #[serde(default = "default_simulator_vendor")]
    pub vendor: String,
    /// Class name (class id = UUID5(vendor id, name)). Default `qemu-armv8a`.
    #[serde(default = "default_simulator_class")]
    pub class: String,
    /// Directory of the simulated TA's state. Default `<state-dir>/simulated-ta`.
    #[serde(default, deserialize_with = "optional_absolute_path")]
    pub state_dir: Option<PathBuf>,
}

/// HTTP(S) client settings (`[http]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HttpConfig {
    /// PEM files of CA certificates trusted for `https://` (absolute paths). Default none.
    #[serde(deserialize_with = "absolute_paths")]
    pub ca_files: Vec<PathBuf>,
    /// Whether the system's CA store (`/etc/ssl/certs`) is trusted too. Default `true`; set
    /// it to `false` to pin the update server to `ca-files`.
    pub system_roots: bool,
    /// Longest wait for a TCP connection and TLS handshake. Default `10s`.
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Longest wait for the response headers once the request is sent. Default `30s`.
    #[serde(deserialize_with = "duration")]
    pub response_timeout: Duration,
    /// Longest time a single read may wait for data: a stalled transfer fails after it (and
    /// is retried and resumed). Default `30s`.
    #[serde(deserialize_with = "duration")]
    pub read_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            ca_files: Vec::new(),
            system_roots: true,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// Retries of failed downloads (`[retry]`): exponential backoff, bounded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RetryPolicy {
    /// Attempts in a row that may fail before the download is given up (1 = no retry). An
    /// attempt that makes progress resets the count. Default 5.
    pub attempts: NonZeroU32,
    /// Wait before the first retry; it doubles with each further failure. Default `1s`.
    #[serde(deserialize_with = "duration")]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts. Default `1m`.
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th failure in a row (1-based): `initial-backoff`
    /// doubled `failures - 1` times, at most `max-backoff`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// Bytes per chunk streamed through the TA: 4 KiB to 1 MiB (default 1 MiB). The staged path
/// never passes more than OP-TEE guarantees (512 KiB); a one-pass stream passes what the TA
/// announces in GET_INFO, up to this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct ChunkSize(u32);

impl ChunkSize {
    /// The smallest accepted chunk size.
    pub const MIN: u32 = 4 * 1024;
    /// The largest accepted chunk size (DESIGN.md §4).
    pub const MAX: u32 = 1024 * 1024;

    /// The size in bytes.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl Default for ChunkSize {
    fn default() -> Self {
        ChunkSize(Self::MAX)
    }
}

impl TryFrom<u64> for ChunkSize {
    type Error = String;

    fn try_from(bytes: u64) -> Result<Self, String> {
        match u32::try_from(bytes) {
            Ok(b) if (Self::MIN..=Self::MAX).contains(&b) => Ok(ChunkSize(b)),
            _ => Err(format!(
                "chunk size {bytes} is out of range ({} to {} bytes)",
                Self::MIN,
                Self::MAX
            )),
        }
    }
}

/// The health check run by `boot-check` (`[health-check]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthCheck {
    /// Program and arguments, run directly (no shell); exit status 0 means healthy.
    #[serde(deserialize_with = "command")]
    pub command: Vec<String>,
    /// Longest time the check may run before it counts as failed. Default `1m`.
    #[serde(default = "default_health_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

/// The device's say in an update (`[policy]`), reported to the TA for SUIT
/// condition-update-authorized and condition-minimum-battery; see [`crate::agent::policy`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyConfig {
    /// Authorization hook: program and arguments, run directly (no shell) before
    /// LOAD_MANIFEST; exit status 0 authorises the update, 1 declines it. Default none: every
    /// update is authorised.
    #[serde(default, deserialize_with = "optional_command")]
    pub authorize: Option<Vec<String>>,
    /// Longest time the hook may run; then the update stops with an error. Default `30s`.
    #[serde(default = "default_authorize_timeout", deserialize_with = "duration")]
    pub authorize_timeout: Duration,
    /// File holding the battery charge in µWh, like the kernel's
    /// `/sys/class/power_supply/BAT0/energy_now` (absolute path). Default none: the device
    /// has no battery and minimum-battery passes.
    #[serde(default, deserialize_with = "optional_absolute_path")]
    pub battery: Option<PathBuf>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            authorize: None,
            authorize_timeout: default_authorize_timeout(),
            battery: None,
        }
    }
}

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file, or its directory, could be changed by someone other than root and the user
    /// running the agent; the configuration names commands run as root, so it is refused.
    #[error("refusing the config file {}: {reason}; it names commands run as root, so only root (or the user running suit-agent) may change it: chown root and chmod go-w", path.display())]
    Untrusted {
        /// The config file.
        path: PathBuf,
        /// Who else could change it.
        reason: String,
    },
    /// The file is not a valid configuration.
    #[error("{}:{line}:{column}: {}{message}", path.display(), field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Line of the error, 1-based.
        line: usize,
        /// Column of the error, 1-based (in characters).
        column: usize,
        /// Dotted path of the offending field (`http.connect-timeout`, `component[1].slot-a`),
        /// when the error is inside one.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and parses the config file at `path`, which must be a regular file that only
    /// root or the running user can change (see [`ConfigError::Untrusted`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        check_trusted(path, &file)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(read_error)?;
        Config::parse(&text, path)
    }

    /// Parses config text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let span = error.span();
            let (line, column) = line_and_column(text, span.as_ref().map_or(0, |s| s.start));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                field: span.and_then(|span| field_at(text, &span)),
                message: error.message().trim_end().to_string(),
            }
        })
    }

    /// The component with SUIT identifier `id`, if the device has it.
    pub fn component(&self, id: &ComponentId) -> Option<&ComponentConfig> {
        self.components.iter().find(|c| c.id == *id)
    }
}

/// Refuses the opened config `file` (named `path`) unless it is a regular file that only
/// root or the running user can change, in a directory of which the same holds (or which is
/// sticky, like `/tmp`): whoever can change it chooses the commands the agent runs as root.
fn check_trusted(path: &Path, file: &std::fs::File) -> Result<(), ConfigError> {
    let euid = rustix::process::geteuid().as_raw();
    let untrusted = |reason: String| ConfigError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(untrusted("it is not a regular file".into()));
    }
    if let Some(reason) = writable_by_others(&meta, euid, "it", false) {
        return Err(untrusted(reason));
    }
    let real = std::fs::canonicalize(path).map_err(read_error)?;
    if let Some(dir) = real.parent() {
        let meta = std::fs::metadata(dir).map_err(read_error)?;
        let what = format!("its directory {}", dir.display());
        if let Some(reason) = writable_by_others(&meta, euid, &what, true) {
            return Err(untrusted(reason));
        }
    }
    Ok(())
}

/// Why `what` (with metadata `meta`) could be changed by someone other than root and `euid`;
/// `None` when it cannot. A sticky directory (`sticky_ok`) may be writable by all: nobody
/// else can replace a file in it that they do not own.
fn writable_by_others(
    meta: &std::fs::Metadata,
    euid: u32,
    what: &str,
    sticky_ok: bool,
) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let (owner, mode) = (meta.uid(), meta.mode());
    if owner != 0 && owner != euid {
        return Some(format!(
            "{what} is owned by uid {owner}, neither root nor the user running suit-agent (uid {euid})"
        ));
    }
    if sticky_ok && mode & 0o1000 != 0 {
        return None;
    }
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (false, false) => return None,
        (true, false) => "its group",
        (false, true) => "everyone",
        (true, true) => "its group and everyone",
    };
    Some(format!(
        "{what} is writable by {who} (mode {:04o})",
        mode & 0o7777
    ))
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The dotted path of the innermost field whose key or value contains `span`.
fn field_at(text: &str, span: &Range<usize>) -> Option<String> {
    let document = toml::de::DeTable::parse(text).ok()?;
    find_field(document.get_ref(), span)
}

/// Searches the children first: a table's own span covers only its `[header]`.
fn find_field(table: &toml::de::DeTable<'_>, span: &Range<usize>) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        let name = key.get_ref();
        if let Some(inner) = find_in_value(value.get_ref(), span) {
            return Some(format!("{name}{inner}"));
        }
        (contains(&key.span(), span) || contains(&value.span(), span)).then(|| name.to_string())
    })
}

/// The path below `value` (`.key`, `[index]`...) of the field containing `span`.
fn find_in_value(value: &toml::de::DeValue<'_>, span: &Range<usize>) -> Option<String> {
    match value {
        toml::de::DeValue::Table(table) => find_field(table, span).map(|path| format!(".{path}")),
        toml::de::DeValue::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            match find_in_value(item.get_ref(), span) {
                Some(inner) => Some(format!("[{index}]{inner}")),
                None => contains(&item.span(), span).then(|| format!("[{index}]")),
            }
        }),
        _ => None,
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

fn default_booted_slot_file() -> PathBuf {
    PathBuf::from(BOOTED_SLOT_FILE)
}

fn default_simulator_vendor() -> String {
    String::from("example.com")
}

fn default_simulator_class() -> String {
    String::from("qemu-armv8a")
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/data/suit-agent")
}

fn default_staging_dir() -> PathBuf {
    PathBuf::from("/data/suit-agent/staging")
}

fn default_health_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_authorize_timeout() -> Duration {
    Duration::from_secs(30)
}
