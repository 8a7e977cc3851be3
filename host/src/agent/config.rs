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

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use suit_shared::manifest::ComponentId;
use url::Url;

use super::Slot;

/// Where the agent reads its configuration unless told otherwise (`--config`).
pub const DEFAULT_PATH: &str = "/etc/suit-agent/config.toml";

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// URL of the update channel: the envelope of the latest release, which `daemon` and
    /// `check` fetch (`http://`, `https://` or `file://`). Without it only `install SOURCE`
    /// updates the device.
    #[serde(default, deserialize_with = "channel_url")]
    pub channel_url: Option<Url>,
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

/// Bytes per chunk streamed through the TA: 4 KiB to 1 MiB.
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
        ChunkSize(512 * 1024)
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

/// Boot control (`[boot]`): where the RAUC-style boot variables live.
///
/// `backend = "file"` takes `path`; `backend = "uboot"` takes `env-size`, `primary`,
/// `redundant` and `lock-file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawBootConfig")]
pub enum BootConfig {
    /// `backend = "file"`: a text file of `BOOT_ORDER=A B`, `BOOT_A_LEFT=3`, `BOOT_B_LEFT=3`
    /// lines that an early init reads (the QEMU image's `/init` does).
    File(FileBootConfig),
    /// `backend = "uboot"`: the U-Boot environment, as `fw_printenv`/`fw_setenv` see it.
    UBoot(UBootEnvConfig),
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig::File(FileBootConfig::default())
    }
}

/// Settings of the file boot backend.
#[derive(Debug, Clone, PartialEq)]
pub struct FileBootConfig {
    /// The boot state file. Default `/data/boot/bootstate`.
    pub path: PathBuf,
}

impl Default for FileBootConfig {
    fn default() -> Self {
        FileBootConfig {
            path: PathBuf::from("/data/boot/bootstate"),
        }
    }
}

/// Settings of the U-Boot environment backend; the same facts as a `fw_env.config`.
#[derive(Debug, Clone, PartialEq)]
pub struct UBootEnvConfig {
    /// Size of one copy of the environment in bytes, header included (U-Boot's
    /// `CONFIG_ENV_SIZE`), e.g. `0x20000`; 16 bytes to 16 MiB.
    pub env_size: usize,
    /// Where the environment (or its first copy) is.
    pub primary: EnvLocation,
    /// Where the second copy is, for a redundant environment (`CONFIG_SYS_REDUNDAND_ENVIRONMENT`).
    pub redundant: Option<EnvLocation>,
    /// Lock file shared with `fw_printenv`/`fw_setenv` so that they never interleave with the
    /// agent. Default `/var/lock/fw_printenv.lock` (libubootenv's).
    pub lock_file: PathBuf,
}

/// The `[boot]` table as written; every field is checked for its type first, then against
/// the backend (so type errors point at their line).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBootConfig {
    backend: BackendName,
    #[serde(default, deserialize_with = "optional_absolute_path")]
    path: Option<PathBuf>,
    #[serde(default, deserialize_with = "optional_env_size")]
    env_size: Option<usize>,
    primary: Option<EnvLocation>,
    redundant: Option<EnvLocation>,
    #[serde(default, deserialize_with = "optional_absolute_path")]
    lock_file: Option<PathBuf>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum BackendName {
    File,
    Uboot,
}

impl TryFrom<RawBootConfig> for BootConfig {
    type Error = String;

    fn try_from(raw: RawBootConfig) -> Result<Self, String> {
        let misplaced =
            |field: &str, backend: &str| format!("`{field}` is a setting of backend \"{backend}\"");
        match raw.backend {
            BackendName::File => {
                let uboot_fields = [
                    ("env-size", raw.env_size.is_some()),
                    ("primary", raw.primary.is_some()),
                    ("redundant", raw.redundant.is_some()),
                    ("lock-file", raw.lock_file.is_some()),
                ];
                if let Some((field, _)) = uboot_fields.iter().find(|(_, set)| *set) {
                    return Err(misplaced(field, "uboot"));
                }
                Ok(BootConfig::File(FileBootConfig {
                    path: raw.path.unwrap_or_else(|| FileBootConfig::default().path),
                }))
            }
            BackendName::Uboot => {
                if raw.path.is_some() {
                    return Err(misplaced("path", "file"));
                }
                let needs = |field: &str| format!("backend \"uboot\" needs `{field}`");
                Ok(BootConfig::UBoot(UBootEnvConfig {
                    env_size: raw.env_size.ok_or_else(|| needs("env-size"))?,
                    primary: raw.primary.ok_or_else(|| needs("primary"))?,
                    redundant: raw.redundant,
                    lock_file: raw
                        .lock_file
                        .unwrap_or_else(|| PathBuf::from("/var/lock/fw_printenv.lock")),
                }))
            }
        }
    }
}

/// Where one copy of the U-Boot environment is stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnvLocation {
    /// Block device or file (raw MTD character devices are not supported).
    #[serde(deserialize_with = "absolute_path")]
    pub device: PathBuf,
    /// Byte offset in the device; a negative offset counts back from the end of a block
    /// device, as in `fw_env.config` (TOML writes it in decimal: `-131072`).
    #[serde(default)]
    pub offset: i64,
}

/// Where one component goes in each slot (`[[component]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawComponent")]
pub struct ComponentConfig {
    /// The SUIT component identifier.
    pub id: ComponentIdBuf,
    /// The component's storage in slot A.
    pub slot_a: SlotTarget,
    /// The component's storage in slot B.
    pub slot_b: SlotTarget,
}

impl ComponentConfig {
    /// The component's storage in `slot`.
    pub fn target(&self, slot: Slot) -> &SlotTarget {
        match slot {
            Slot::A => &self.slot_a,
            Slot::B => &self.slot_b,
        }
    }
}

/// One slot's storage of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotTarget {
    /// Block device or file the component is written to.
    pub path: PathBuf,
    /// The SUIT component-slot value (parameter key 5) of this slot; the manifest's
    /// try-each over component-slot picks the payload for it.
    pub component_slot: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawComponent {
    id: ComponentIdBuf,
    slot_a: RawSlotTarget,
    slot_b: RawSlotTarget,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSlotTarget {
    #[serde(deserialize_with = "absolute_path")]
    path: PathBuf,
    component_slot: Option<u64>,
}

impl TryFrom<RawComponent> for ComponentConfig {
    type Error = String;

    fn try_from(raw: RawComponent) -> Result<Self, String> {
        let slot_a = SlotTarget {
            path: raw.slot_a.path,
            component_slot: raw.slot_a.component_slot.unwrap_or(0),
        };
        let slot_b = SlotTarget {
            path: raw.slot_b.path,
            component_slot: raw.slot_b.component_slot.unwrap_or(1),
        };
        if slot_a.path == slot_b.path {
            return Err(format!(
                "component {}: slot-a and slot-b are the same path {}",
                raw.id,
                slot_a.path.display()
            ));
        }
        if slot_a.component_slot == slot_b.component_slot {
            return Err(format!(
                "component {}: slot-a and slot-b have the same component-slot {}",
                raw.id, slot_a.component_slot
            ));
        }
        Ok(ComponentConfig {
            id: raw.id,
            slot_a,
            slot_b,
        })
    }
}

/// An owned SUIT component identifier: a list of byte strings.
///
/// In the config file (and the journal) it is a list of strings, as in `suit-tool`'s spec:
/// each part is its UTF-8 text, or `0x` followed by hex digits for raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentIdBuf(pub Vec<Vec<u8>>);

impl ComponentIdBuf {
    /// The borrowed form the SUIT core uses.
    pub fn as_component_id(&self) -> ComponentId<'_> {
        ComponentId(self.0.iter().map(Vec::as_slice).collect())
    }

    /// Whether `id` names this component.
    pub fn matches(&self, id: &ComponentId<'_>) -> bool {
        self.0.len() == id.0.len() && self.0.iter().zip(&id.0).all(|(a, b)| a == b)
    }

    fn parse_part(text: &str) -> Result<Vec<u8>, String> {
        match text.strip_prefix("0x") {
            Some(hex) => base16ct::mixed::decode_vec(hex)
                .map_err(|_| format!("{text:?} is not valid hex after 0x")),
            None => Ok(text.as_bytes().to_vec()),
        }
    }

    fn part_text(part: &[u8]) -> String {
        match std::str::from_utf8(part) {
            Ok(text) if !text.starts_with("0x") && !text.is_empty() => text.to_string(),
            _ => format!("0x{}", base16ct::lower::encode_string(part)),
        }
    }
}

impl<'a> From<&ComponentId<'a>> for ComponentIdBuf {
    fn from(id: &ComponentId<'a>) -> Self {
        ComponentIdBuf(id.0.iter().map(|part| part.to_vec()).collect())
    }
}

impl fmt::Display for ComponentIdBuf {
    /// As the SUIT core shows identifiers: `['rootfs']`, `[h'00ff']`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_component_id().fmt(f)
    }
}

impl<'de> Deserialize<'de> for ComponentIdBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parts = Vec::<String>::deserialize(deserializer)?;
        if parts.is_empty() {
            return Err(de::Error::custom(
                "a component identifier needs at least one part",
            ));
        }
        parts
            .iter()
            .map(|part| ComponentIdBuf::parse_part(part))
            .collect::<Result<Vec<_>, _>>()
            .map(ComponentIdBuf)
            .map_err(de::Error::custom)
    }
}

impl Serialize for ComponentIdBuf {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|part| ComponentIdBuf::part_text(part)))
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
    pub fn component(&self, id: &ComponentId<'_>) -> Option<&ComponentConfig> {
        self.components.iter().find(|c| c.id.matches(id))
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
    PathBuf::from(super::bootctl::BOOTED_SLOT_FILE)
}

fn default_simulator_vendor() -> String {
    String::from("example.com")
}

fn default_simulator_class() -> String {
    String::from("qemu-armv8a")
}

fn optional_command<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    command(deserializer).map(Some)
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

/// A positive duration written as text: `500ms`, `30s`, `5m`, `1h 30m`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    let value = humantime::parse_duration(&text)
        .map_err(|e| de::Error::custom(format!("invalid duration {text:?}: {e}")))?;
    if value.is_zero() {
        return Err(de::Error::custom(format!(
            "duration {text:?} must be greater than zero"
        )));
    }
    Ok(value)
}

fn absolute_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    let path = PathBuf::deserialize(deserializer)?;
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(de::Error::custom(format!(
            "path {} must be absolute",
            path.display()
        )))
    }
}

fn absolute_paths<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PathBuf>, D::Error> {
    let paths = Vec::<PathBuf>::deserialize(deserializer)?;
    match paths.iter().find(|p| !p.is_absolute()) {
        Some(relative) => Err(de::Error::custom(format!(
            "path {} must be absolute",
            relative.display()
        ))),
        None => Ok(paths),
    }
}

fn url_with_scheme<'de, D: Deserializer<'de>>(
    deserializer: D,
    schemes: &[&str],
) -> Result<Option<Url>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let url =
        Url::parse(&text).map_err(|e| de::Error::custom(format!("invalid URL {text:?}: {e}")))?;
    if schemes.contains(&url.scheme()) {
        Ok(Some(url))
    } else {
        Err(de::Error::custom(format!(
            "URL {text:?} has scheme {:?}; expected one of {}",
            url.scheme(),
            schemes.join(", ")
        )))
    }
}

fn channel_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Url>, D::Error> {
    url_with_scheme(deserializer, &["http", "https", "file"])
}

fn report_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Url>, D::Error> {
    url_with_scheme(deserializer, &["http", "https"])
}

fn optional_env_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    const RANGE: std::ops::RangeInclusive<u64> = 16..=(16 << 20);
    let size = u64::deserialize(deserializer)?;
    if RANGE.contains(&size) {
        usize::try_from(size).map(Some).map_err(de::Error::custom)
    } else {
        Err(de::Error::custom(format!(
            "environment size {size} is out of range ({} to {} bytes)",
            RANGE.start(),
            RANGE.end()
        )))
    }
}

fn optional_absolute_path<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<PathBuf>, D::Error> {
    absolute_path(deserializer).map(Some)
}

fn command<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let argv = Vec::<String>::deserialize(deserializer)?;
    match argv.first() {
        Some(program) if !program.is_empty() => Ok(argv),
        _ => Err(de::Error::custom(
            "the command needs a program: [\"/path/to/program\", \"arg\", ...]",
        )),
    }
}

fn components<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ComponentConfig>, D::Error> {
    let components = Vec::<ComponentConfig>::deserialize(deserializer)?;
    if components.is_empty() {
        return Err(de::Error::custom("at least one [[component]] is needed"));
    }
    for (i, component) in components.iter().enumerate() {
        for other in &components[..i] {
            if other.id == component.id {
                return Err(de::Error::custom(format!(
                    "component {} is configured twice",
                    component.id
                )));
            }
            for slot in Slot::ALL {
                for other_slot in Slot::ALL {
                    if component.target(slot).path == other.target(other_slot).path {
                        return Err(de::Error::custom(format!(
                            "components {} and {} share the path {}",
                            other.id,
                            component.id,
                            component.target(slot).path.display()
                        )));
                    }
                }
            }
        }
    }
    Ok(components)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[component]]
id = ["rootfs"]
slot-a = { path = "/dev/vda" }
slot-b = { path = "/dev/vdb" }
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/suit-agent/config.toml"))
    }

    fn error(text: &str) -> (usize, Option<String>, String) {
        match parse(text) {
            Ok(config) => panic!("accepted: {config:?}"),
            Err(ConfigError::Invalid {
                line,
                field,
                message,
                ..
            }) => (line, field, message),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.channel_url, None);
        assert_eq!(config.poll_interval, Duration::from_secs(3600));
        assert_eq!(config.state_dir, Path::new("/data/suit-agent"));
        assert_eq!(config.staging_dir, Path::new("/data/suit-agent/staging"));
        assert_eq!(config.chunk_size.get(), 512 * 1024);
        assert_eq!(config.http, HttpConfig::default());
        assert_eq!(config.retry, RetryPolicy::default());
        assert_eq!(
            config.boot,
            BootConfig::File(FileBootConfig {
                path: "/data/boot/bootstate".into()
            })
        );
        let component = &config.components[0];
        assert_eq!(component.id, ComponentIdBuf(vec![b"rootfs".to_vec()]));
        assert_eq!(component.target(Slot::A).component_slot, 0);
        assert_eq!(component.target(Slot::B).component_slot, 1);
        assert_eq!(component.target(Slot::B).path, Path::new("/dev/vdb"));
        assert_eq!(config.health_check, None);
        assert_eq!(config.report_url, None);
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../examples/agent-config.toml");
        let config = parse(text).unwrap();
        assert_eq!(
            config.channel_url.as_ref().map(Url::as_str),
            Some("https://updates.example.com/gateway/stable.suit")
        );
        assert_eq!(config.poll_interval, Duration::from_secs(6 * 3600));
        assert_eq!(config.http.ca_files.len(), 1);
        assert_eq!(config.retry.attempts.get(), 6);
        assert_eq!(config.retry.backoff(1), Duration::from_secs(2));
        assert_eq!(config.components.len(), 2);
        let BootConfig::UBoot(uboot) = &config.boot else {
            panic!("example uses the U-Boot backend: {:?}", config.boot)
        };
        assert_eq!(uboot.env_size, 0x20000);
        assert_eq!(uboot.primary.offset, 0x3c0000);
        assert_eq!(uboot.redundant.as_ref().map(|r| r.offset), Some(-131072));
        let check = config.health_check.as_ref().unwrap();
        assert_eq!(check.command[0], "/usr/libexec/gateway/health");
        assert_eq!(check.timeout, Duration::from_secs(120));
        assert!(config.report_url.is_some());
        let id = ComponentIdBuf(vec![b"bootloader".to_vec(), vec![0, 1]]);
        assert!(config.component(&id.as_component_id()).is_some());
    }

    #[test]
    fn every_section_can_be_set() {
        let text = format!(
            r#"
channel-url = "file:///media/usb/update.suit"
poll-interval = "90s"
state-dir = "/var/lib/suit-agent"
staging-dir = "/var/lib/suit-agent/staging"
chunk-size = 65536
report-url = "http://reports.example.com/in"
[http]
ca-files = ["/etc/suit-agent/ca.pem", "/etc/suit-agent/ca2.pem"]
system-roots = false
connect-timeout = "2s"
response-timeout = "3s"
read-timeout = "500ms"
[retry]
attempts = 1
initial-backoff = "100ms"
max-backoff = "300ms"
[boot]
backend = "file"
path = "/tmp/bootstate"
[health-check]
command = ["/bin/true"]
{MINIMAL}"#
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.poll_interval, Duration::from_secs(90));
        assert_eq!(config.chunk_size.get(), 65536);
        assert!(!config.http.system_roots);
        assert_eq!(config.http.read_timeout, Duration::from_millis(500));
        assert_eq!(config.retry.attempts.get(), 1);
        assert_eq!(
            config.boot,
            BootConfig::File(FileBootConfig {
                path: "/tmp/bootstate".into()
            })
        );
        assert_eq!(
            config.health_check.unwrap().timeout,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: NonZeroU32::MIN,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
        };
        let waits: Vec<_> = (1..=5).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 700, 700]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(700));
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let (line, field, message) = error(&format!(
            "{MINIMAL}[http]\nconnect-timeout = \"1s\"\nproxy = \"x\"\n"
        ));
        assert_eq!(line, 8);
        assert_eq!(field.as_deref(), Some("http.proxy"));
        assert!(message.contains("unknown field `proxy`"), "{message}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("chunk-size = 100\n", "chunk-size", "out of range"),
            (
                "poll-interval = \"10 parsecs\"\n",
                "poll-interval",
                "invalid duration",
            ),
            (
                "poll-interval = \"0s\"\n",
                "poll-interval",
                "greater than zero",
            ),
            (
                "state-dir = \"relative/dir\"\n",
                "state-dir",
                "must be absolute",
            ),
            (
                "channel-url = \"ftp://x/y.suit\"\n",
                "channel-url",
                "scheme \"ftp\"",
            ),
            (
                "report-url = \"file:///tmp/r\"\n",
                "report-url",
                "scheme \"file\"",
            ),
            (
                "channel-url = \"not a url\"\n",
                "channel-url",
                "invalid URL",
            ),
            ("[retry]\nattempts = 0\n", "retry.attempts", "nonzero"),
            (
                "[http]\nca-files = [\"ca.pem\"]\n",
                "http.ca-files",
                "must be absolute",
            ),
            (
                "[health-check]\ncommand = []\n",
                "health-check.command",
                "needs a program",
            ),
        ];
        for (text, field, needle) in cases {
            let (line, got_field, message) = error(&format!("{text}{MINIMAL}"));
            assert_eq!(got_field.as_deref(), Some(*field), "{text}: {message}");
            assert!(message.contains(needle), "{text}: {message}");
            assert!(line <= 2, "{text}: line {line}");
        }
    }

    #[test]
    fn components_are_checked() {
        let (line, _, message) = error("poll-interval = \"1m\"\n");
        assert_eq!(line, 1);
        assert!(message.contains("missing field `component`"), "{message}");

        let twice = format!("{MINIMAL}{}", MINIMAL.replace("/dev/vd", "/dev/sd"));
        let (line, field, message) = error(&twice);
        assert!(message.contains("configured twice"), "{message}");
        assert!(field.is_some_and(|f| f.starts_with("component")));
        assert!(line >= 2, "line {line}");

        let shared = format!(
            "{MINIMAL}{}",
            MINIMAL
                .replace("rootfs", "app")
                .replace("/dev/vda", "/dev/vdc")
        );
        let (_, _, message) = error(&shared);
        assert!(message.contains("share the path /dev/vdb"), "{message}");

        let same = MINIMAL.replace("/dev/vdb", "/dev/vda");
        let (line, field, message) = error(&same);
        assert!(message.contains("same path"), "{message}");
        assert_eq!(field.as_deref(), Some("component[0]"));
        assert_eq!(line, 2);

        let same_value = MINIMAL.replace(
            "path = \"/dev/vdb\"",
            "path = \"/dev/vdb\", component-slot = 0",
        );
        let (_, _, message) = error(&same_value);
        assert!(message.contains("same component-slot 0"), "{message}");

        let bad_hex = MINIMAL.replace("\"rootfs\"", "\"0xzz\"");
        let (line, field, message) = error(&bad_hex);
        assert!(message.contains("not valid hex"), "{message}");
        assert_eq!(field.as_deref(), Some("component[0].id"));
        assert_eq!(line, 3);
    }

    #[test]
    fn boot_backends_are_strict() {
        let boot = |body: &str| error(&format!("{MINIMAL}[boot]\n{body}"));
        let (line, field, message) = boot("backend = \"grub\"\n");
        assert!(message.contains("unknown variant `grub`"), "{message}");
        assert_eq!(field.as_deref(), Some("boot.backend"));
        assert_eq!(line, 7);

        let (line, field, message) = boot("backend = \"file\"\npath = \"/x\"\nsize = 3\n");
        assert!(message.contains("unknown field `size`"), "{message}");
        assert_eq!(field.as_deref(), Some("boot.size"));
        assert_eq!(line, 9);

        let (line, field, message) =
            boot("backend = \"uboot\"\nenv-size = 8\nprimary = { device = \"/dev/mmcblk0\" }\n");
        assert!(
            message.contains("environment size 8 is out of range"),
            "{message}"
        );
        assert_eq!(field.as_deref(), Some("boot.env-size"));
        assert_eq!(line, 8);

        let (_, field, message) = boot(
            "backend = \"uboot\"\nenv-size = 16\nprimary = { device = \"/env\", offset = \"0\" }\n",
        );
        assert!(message.contains("invalid type"), "{message}");
        assert_eq!(field.as_deref(), Some("boot.primary.offset"));

        let (line, field, message) = boot("backend = \"uboot\"\nenv-size = 0x4000\n");
        assert!(
            message.contains("backend \"uboot\" needs `primary`"),
            "{message}"
        );
        assert_eq!(field.as_deref(), Some("boot"));
        assert_eq!(line, 6);

        let (_, _, message) = boot("backend = \"file\"\nenv-size = 0x4000\n");
        assert!(
            message.contains("`env-size` is a setting of backend \"uboot\""),
            "{message}"
        );
        let (_, _, message) = boot(
            "backend = \"uboot\"\nenv-size = 64\nprimary = { device = \"/e\" }\npath = \"/p\"\n",
        );
        assert!(
            message.contains("`path` is a setting of backend \"file\""),
            "{message}"
        );

        let config = parse(&format!(
            "{MINIMAL}[boot]\nbackend = \"uboot\"\nenv-size = 0x4000\nprimary = {{ device = \"/boot/uboot.env\" }}\n"
        ))
        .unwrap();
        assert_eq!(
            config.boot,
            BootConfig::UBoot(UBootEnvConfig {
                env_size: 0x4000,
                primary: EnvLocation {
                    device: "/boot/uboot.env".into(),
                    offset: 0
                },
                redundant: None,
                lock_file: "/var/lock/fw_printenv.lock".into(),
            })
        );
    }

    #[test]
    fn syntax_errors_point_at_the_line() {
        let (line, _, message) = error("chunk-size = 4096\nstate-dir = \n");
        assert_eq!(line, 2);
        assert!(!message.is_empty());
        let err = parse("x = [").unwrap_err().to_string();
        assert!(err.starts_with("/etc/suit-agent/config.toml:1:"), "{err}");
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = Config::load(Path::new("/nonexistent/suit-agent.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/suit-agent.toml"));
    }

    #[test]
    fn component_ids_use_the_spec_notation() {
        let id: ComponentIdBuf = serde_json::from_str(r#"["rootfs", "0x00ff", "0x"]"#).unwrap();
        assert_eq!(id.0, vec![b"rootfs".to_vec(), vec![0, 0xff], vec![]]);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            r#"["rootfs","0x00ff","0x"]"#
        );
        let tricky = ComponentIdBuf(vec![b"0x12".to_vec()]);
        let text = serde_json::to_string(&tricky).unwrap();
        assert_eq!(text, r#"["0x30783132"]"#);
        assert_eq!(
            serde_json::from_str::<ComponentIdBuf>(&text).unwrap(),
            tricky
        );
        assert!(serde_json::from_str::<ComponentIdBuf>("[]").is_err());
        assert_eq!(id.to_string(), "['rootfs', h'00ff', h'']");
        let borrowed = id.as_component_id();
        assert!(id.matches(&borrowed));
        assert_eq!(ComponentIdBuf::from(&borrowed), id);
        assert!(!ComponentIdBuf(vec![b"rootfs".to_vec()]).matches(&borrowed));
    }
}
