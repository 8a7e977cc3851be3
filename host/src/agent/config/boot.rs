//! The `[boot]` table: which boot control backend and where its state lives.

use std::path::PathBuf;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::fields::{absolute_path, optional_absolute_path};

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
