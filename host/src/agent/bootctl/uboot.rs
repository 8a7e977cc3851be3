//! The U-Boot environment backend, byte-compatible with `fw_printenv`/`fw_setenv`
//! (libubootenv).
//!
//! One stored copy of the environment is `env-size` bytes:
//!
//! ```text
//! single:     | CRC32 (4, little-endian) | data ...                          |
//! redundant:  | CRC32 (4, little-endian) | flags (1) | data ...              |
//! data:       name=value \0 name=value \0 ... \0 (end), 0xff padding to env-size
//! ```
//!
//! The CRC (the zlib CRC-32) covers the whole data area, padding included. A redundant
//! environment has two copies; when both are valid the one with the higher flags byte is
//! current, where 0 counts as newer than 255 (the counter wraps). A write goes to the
//! *other* copy with the flags byte incremented, so a power cut during the write leaves the
//! current copy intact. A single environment has no such protection: a power cut in the
//! middle of its write leaves a bad CRC, and U-Boot then boots with its built-in defaults.
//!
//! Like libubootenv, a new variable is inserted before the first one whose name sorts after
//! it, an existing one changes in place, and entries without `=` are dropped. The agent
//! takes libubootenv's lock file around every read-modify-write. Raw MTD devices (which need
//! erase ioctls) are not supported: block devices (eMMC, including boot partitions whose
//! `force_ro` is cleared) and files are.

use super::{BootControl, BootError, BootState, Slot};
use crate::agent::config::{EnvLocation, UBootEnvConfig};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};

/// Bytes of the CRC at the start of each copy.
const CRC_LEN: usize = 4;

/// The byte after the end of the variable list.
const PADDING: u8 = 0xff;

/// The variables of a U-Boot environment, in storage order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UBootEnv {
    vars: Vec<(Vec<u8>, Vec<u8>)>,
}

impl UBootEnv {
    /// An empty environment.
    pub fn new() -> UBootEnv {
        UBootEnv::default()
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// Sets `name` to `value`: in place if it exists, else before the first variable whose
    /// name sorts after it (as `fw_setenv` does).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), BootError> {
        let invalid = |reason| BootError::InvalidVariable {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        if name.contains(['=', '\0']) {
            return Err(invalid("the name contains '=' or NUL"));
        }
        if value.contains('\0') {
            return Err(invalid("the value contains NUL"));
        }
        let (name, value) = (name.as_bytes(), value.as_bytes().to_vec());
        if let Some(entry) = self.vars.iter_mut().find(|(n, _)| n == name) {
            entry.1 = value;
            return Ok(());
        }
        let at = self
            .vars
            .iter()
            .position(|(n, _)| n.as_slice() > name)
            .unwrap_or(self.vars.len());
        self.vars.insert(at, (name.to_vec(), value));
        Ok(())
    }

    /// Removes `name`; tells whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.vars.len();
        self.vars.retain(|(n, _)| n != name.as_bytes());
        self.vars.len() != before
    }

    /// The variables as `(name, value)` byte strings, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.vars.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// Parses a data area: `name=value` entries, each NUL-terminated, up to an empty entry.
    fn parse_data(data: &[u8]) -> Result<UBootEnv, &'static str> {
        let mut vars = Vec::new();
        let mut rest = data;
        loop {
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or("the variable list has no end (no double NUL)")?;
            if end == 0 {
                return Ok(UBootEnv { vars });
            }
            let entry = &rest[..end];
            if let Some(eq) = entry.iter().position(|&b| b == b'=') {
                vars.push((entry[..eq].to_vec(), entry[eq + 1..].to_vec()));
            }
            rest = &rest[end + 1..];
        }
    }

    /// Writes the data area into `out` (filled with the padding byte beforehand).
    fn write_data(&self, out: &mut [u8]) -> Result<(), BootError> {
        let needed = self
            .vars
            .iter()
            .map(|(n, v)| n.len() + 1 + v.len() + 1)
            .sum::<usize>()
            + 1;
        if needed > out.len() {
            return Err(BootError::EnvironmentFull {
                needed,
                capacity: out.len(),
            });
        }
        let mut at = 0;
        for (name, value) in &self.vars {
            for part in [name.as_slice(), b"=", value.as_slice(), b"\0"] {
                out[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
        }
        out[at] = 0;
        Ok(())
    }
}

/// Serializes one stored copy of `env_size` bytes: CRC, the flags byte when `flags` is
/// given (redundant environments), then the data area padded with 0xff (the erased state of
/// flash, and mkenvimage's default; readers only need the CRC to cover the padding).
pub fn encode_copy(
    env: &UBootEnv,
    env_size: usize,
    flags: Option<u8>,
) -> Result<Vec<u8>, BootError> {
    let header = CRC_LEN + usize::from(flags.is_some());
    let mut image = vec![PADDING; env_size.max(header)];
    env.write_data(&mut image[header..])?;
    if let Some(flags) = flags {
        image[CRC_LEN] = flags;
    }
    let crc = crc32fast::hash(&image[header..]);
    image[..CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(image)
}

/// One stored copy that passed its CRC check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedCopy {
    /// Its variables.
    pub env: UBootEnv,
    /// Its flags byte (redundant environments only).
    pub flags: Option<u8>,
}

/// Parses one stored copy. `Ok(None)` when its CRC does not match (never written, or
/// interrupted while being written); an error when the CRC matches but the content is not
/// a variable list.
pub fn decode_copy(image: &[u8], redundant: bool) -> Result<Option<DecodedCopy>, &'static str> {
    let header = CRC_LEN + usize::from(redundant);
    if image.len() <= header {
        return Err("the environment is smaller than its header");
    }
    let mut stored = [0u8; CRC_LEN];
    stored.copy_from_slice(&image[..CRC_LEN]);
    if crc32fast::hash(&image[header..]) != u32::from_le_bytes(stored) {
        return Ok(None);
    }
    Ok(Some(DecodedCopy {
        env: UBootEnv::parse_data(&image[header..])?,
        flags: redundant.then_some(image[CRC_LEN]),
    }))
}

/// Which of two valid redundant copies is current: the higher flags byte, with 0 newer
/// than 255; the first on a tie (libubootenv's and U-Boot's rule).
fn current_of_two(first: u8, second: u8) -> usize {
    match (first, second) {
        (255, 0) => 1,
        (0, 255) => 0,
        (a, b) if b > a => 1,
        _ => 0,
    }
}

/// The environment storage a [`UBootEnvConfig`] describes.
#[derive(Debug, Clone)]
pub struct UBootEnvStorage {
    config: UBootEnvConfig,
}

/// The current copy as read from storage.
struct Current {
    env: UBootEnv,
    /// Index of the current copy (0 = primary, 1 = redundant).
    copy: usize,
    flags: Option<u8>,
}

impl UBootEnvStorage {
    /// Storage as described by `config`.
    pub fn new(config: UBootEnvConfig) -> UBootEnvStorage {
        UBootEnvStorage { config }
    }

    /// Where the copies are, for messages.
    pub fn describe(&self) -> String {
        let copy = |l: &EnvLocation| format!("{} at offset {}", l.device.display(), l.offset);
        match &self.config.redundant {
            None => format!("U-Boot environment ({})", copy(&self.config.primary)),
            Some(second) => format!(
                "redundant U-Boot environment ({} and {})",
                copy(&self.config.primary),
                copy(second)
            ),
        }
    }

    /// Reads the current environment.
    pub fn read(&self) -> Result<UBootEnv, BootError> {
        let _lock = self.lock()?;
        Ok(self.read_current()?.env)
    }

    /// Reads the current environment, lets `change` edit it, and writes the result to the
    /// copy that is not current (the only copy for a single environment), all under the
    /// lock. Nothing is written when `change` leaves the environment as it was.
    pub fn modify<T>(
        &self,
        change: impl FnOnce(&mut UBootEnv) -> Result<T, BootError>,
    ) -> Result<T, BootError> {
        let _lock = self.lock()?;
        let current = self.read_current()?;
        let mut env = current.env.clone();
        let result = change(&mut env)?;
        if env == current.env {
            return Ok(result);
        }
        let (target, flags) = match &self.config.redundant {
            None => (&self.config.primary, None),
            Some(second) if current.copy == 0 => (second, current.flags.map(|f| f.wrapping_add(1))),
            Some(_) => (
                &self.config.primary,
                current.flags.map(|f| f.wrapping_add(1)),
            ),
        };
        let image = encode_copy(&env, self.config.env_size, flags)?;
        write_copy(target, &image)?;
        Ok(result)
    }

    fn lock(&self) -> Result<File, BootError> {
        let path = &self.config.lock_file;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BootError::io("create", dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| BootError::io("open the lock file", path, e))?;
        file.lock().map_err(|e| BootError::io("lock", path, e))?;
        Ok(file)
    }

    fn read_current(&self) -> Result<Current, BootError> {
        let redundant = self.config.redundant.is_some();
        let mut copies = Vec::with_capacity(2);
        for location in std::iter::once(&self.config.primary).chain(&self.config.redundant) {
            let image = read_copy(location, self.config.env_size)?;
            let decoded =
                decode_copy(&image, redundant).map_err(|reason| BootError::Malformed {
                    location: location.device.display().to_string(),
                    reason: reason.to_string(),
                })?;
            copies.push(decoded);
        }
        let pick = match (copies.first(), copies.get(1)) {
            (Some(Some(a)), Some(Some(b))) => {
                current_of_two(a.flags.unwrap_or(0), b.flags.unwrap_or(0))
            }
            (Some(Some(_)), _) => 0,
            (Some(None), Some(Some(_))) => 1,
            _ => {
                return Err(BootError::NoValidEnvironment {
                    location: self.describe(),
                })
            }
        };
        match copies.swap_remove(pick) {
            Some(copy) => Ok(Current {
                env: copy.env,
                copy: pick,
                flags: copy.flags,
            }),
            None => Err(BootError::NoValidEnvironment {
                location: self.describe(),
            }),
        }
    }
}

/// Opens `location` and positions it at the copy; negative offsets count from the end.
fn seek_to(file: &mut File, location: &EnvLocation) -> std::io::Result<()> {
    let position = if location.offset < 0 {
        SeekFrom::End(location.offset)
    } else {
        SeekFrom::Start(location.offset.unsigned_abs())
    };
    file.seek(position).map(|_| ())
}

fn read_copy(location: &EnvLocation, size: usize) -> Result<Vec<u8>, BootError> {
    let path = &location.device;
    let mut file = File::open(path).map_err(|e| BootError::io("open", path, e))?;
    seek_to(&mut file, location).map_err(|e| BootError::io("seek in", path, e))?;
    let mut image = vec![0u8; size];
    file.read_exact(&mut image)
        .map_err(|e| BootError::io("read the environment from", path, e))?;
    Ok(image)
}

fn write_copy(location: &EnvLocation, image: &[u8]) -> Result<(), BootError> {
    let path = &location.device;
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| BootError::io("open for writing", path, e))?;
    seek_to(&mut file, location).map_err(|e| BootError::io("seek in", path, e))?;
    file.write_all(image)
        .and_then(|()| file.sync_all())
        .map_err(|e| BootError::io("write the environment to", path, e))
}

/// Boot control through the U-Boot environment.
#[derive(Debug, Clone)]
pub struct UBootBootControl {
    storage: UBootEnvStorage,
}

impl UBootBootControl {
    /// Boot control through the environment `config` describes.
    pub fn new(config: UBootEnvConfig) -> UBootBootControl {
        UBootBootControl {
            storage: UBootEnvStorage::new(config),
        }
    }

    fn state_of(&self, env: &UBootEnv) -> Result<BootState, BootError> {
        let location = self.storage.describe();
        let text = |name: &str| -> Result<Option<&str>, BootError> {
            env.get(name)
                .map(|value| {
                    std::str::from_utf8(value).map_err(|_| BootError::Malformed {
                        location: location.clone(),
                        reason: format!("{name} is not text"),
                    })
                })
                .transpose()
        };
        BootState::from_variables(
            text("BOOT_ORDER")?,
            text("BOOT_A_LEFT")?,
            text("BOOT_B_LEFT")?,
            &location,
        )
    }
}

impl BootControl for UBootBootControl {
    fn describe(&self) -> String {
        self.storage.describe()
    }

    fn load(&self) -> Result<BootState, BootError> {
        self.state_of(&self.storage.read()?)
    }

    fn modify(&self, change: &mut dyn FnMut(&mut BootState)) -> Result<BootState, BootError> {
        self.storage.modify(|env| {
            let mut state = self.state_of(env)?;
            change(&mut state);
            env.set("BOOT_ORDER", &state.order_text())?;
            env.set("BOOT_A_LEFT", &state.attempts_left(Slot::A).to_string())?;
            env.set("BOOT_B_LEFT", &state.attempts_left(Slot::B).to_string())?;
            Ok(state)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn env(vars: &[(&str, &str)]) -> UBootEnv {
        let mut env = UBootEnv::new();
        for (n, v) in vars {
            env.set(n, v).unwrap();
        }
        env
    }

    #[test]
    fn image_layout_is_crc_flags_data_padding() {
        let e = env(&[("bootcmd", "run x"), ("BOOT_ORDER", "A B")]);
        let image = encode_copy(&e, 64, None).unwrap();
        assert_eq!(image.len(), 64);
        assert_eq!(&image[4..30], b"BOOT_ORDER=A B\0bootcmd=run");
        assert_eq!(&image[30..36], b" x\0\0\xff\xff");
        assert_eq!(
            u32::from_le_bytes(image[..4].try_into().unwrap()),
            crc32fast::hash(&image[4..])
        );
        let redundant = encode_copy(&e, 64, Some(7)).unwrap();
        assert_eq!(redundant[4], 7);
        assert_eq!(&redundant[5..9], b"BOOT");
        assert_eq!(
            decode_copy(&redundant, true).unwrap(),
            Some(DecodedCopy {
                env: e.clone(),
                flags: Some(7)
            })
        );
        assert_eq!(decode_copy(&image, false).unwrap().map(|c| c.env), Some(e));
    }

    #[test]
    fn known_crc() {
        // An empty environment of 16 bytes: the CRC of one NUL and 11 bytes of padding.
        let image = encode_copy(&UBootEnv::new(), 16, None).unwrap();
        assert_eq!(
            &image[4..],
            b"\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
        );
        assert_eq!(&image[..4], &0x8d80_8eef_u32.to_le_bytes());
    }

    #[test]
    fn bad_crc_and_bad_content_are_told_apart() {
        let mut image = encode_copy(&env(&[("a", "1")]), 32, None).unwrap();
        image[10] ^= 1;
        assert_eq!(decode_copy(&image, false).unwrap(), None);
        let mut full = vec![b'x'; 32];
        let crc = crc32fast::hash(&full[4..]);
        full[..4].copy_from_slice(&crc.to_le_bytes());
        assert!(decode_copy(&full, false).is_err());
        assert!(decode_copy(&[0; 4], false).is_err());
    }

    #[test]
    fn variables_keep_fw_setenv_order_and_rules() {
        let mut e = env(&[("b", "2"), ("a", "1"), ("c", "3")]);
        let names: Vec<_> = e.iter().map(|(n, _)| n.to_vec()).collect();
        assert_eq!(names, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        e.set("b", "two").unwrap();
        assert_eq!(e.get("b"), Some(&b"two"[..]));
        assert!(e.remove("a"));
        assert!(!e.remove("a"));
        assert!(e.set("", "x").is_err());
        assert!(e.set("x=y", "x").is_err());
        assert!(e.set("x", "a\0b").is_err());
        let parsed = UBootEnv::parse_data(b"z=1\0noequals\0a=\0\0junk").unwrap();
        assert_eq!(parsed.get("z"), Some(&b"1"[..]));
        assert_eq!(parsed.get("a"), Some(&b""[..]));
        assert_eq!(parsed.iter().count(), 2);
        assert!(UBootEnv::parse_data(b"a=1\0b=2").is_err());
    }

    #[test]
    fn full_environment_is_refused() {
        let e = env(&[("name", "a long value that does not fit")]);
        assert!(matches!(
            encode_copy(&e, 16, None),
            Err(BootError::EnvironmentFull { .. })
        ));
    }

    #[test]
    fn redundant_current_copy_follows_the_flags_with_wraparound() {
        assert_eq!(current_of_two(1, 2), 1);
        assert_eq!(current_of_two(2, 1), 0);
        assert_eq!(current_of_two(5, 5), 0);
        assert_eq!(current_of_two(255, 0), 1);
        assert_eq!(current_of_two(0, 255), 0);
        assert_eq!(current_of_two(254, 255), 1);
    }

    fn config(dir: &Path, redundant: bool) -> UBootEnvConfig {
        UBootEnvConfig {
            env_size: 0x100,
            primary: EnvLocation {
                device: dir.join("env"),
                offset: 0x200,
            },
            redundant: redundant.then(|| EnvLocation {
                device: dir.join("env"),
                offset: -0x100,
            }),
            lock_file: dir.join("lock"),
        }
    }

    #[test]
    fn redundant_writes_alternate_and_survive_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), true);
        let file = dir.path().join("env");
        let mut disk = vec![0xffu8; 0x400];
        let first = encode_copy(&env(&[("bootcmd", "boot")]), 0x100, Some(1)).unwrap();
        disk[0x200..0x300].copy_from_slice(&first);
        std::fs::write(&file, &disk).unwrap();

        let boot = UBootBootControl::new(cfg.clone());
        assert_eq!(boot.load().unwrap(), BootState::default());
        boot.mark_trial(Slot::B).unwrap();
        let disk = std::fs::read(&file).unwrap();
        let second = decode_copy(&disk[0x300..], true).unwrap().unwrap();
        assert_eq!(second.flags, Some(2));
        assert_eq!(second.env.get("BOOT_ORDER"), Some(&b"B A"[..]));
        assert_eq!(second.env.get("bootcmd"), Some(&b"boot"[..]));
        // The primary copy is untouched by that write.
        assert_eq!(&disk[0x200..0x300], &first[..]);

        boot.mark_good(Slot::B).unwrap();
        let disk = std::fs::read(&file).unwrap();
        assert_eq!(
            decode_copy(&disk[0x200..0x300], true)
                .unwrap()
                .unwrap()
                .flags,
            Some(3)
        );

        // A torn write of the next copy: its CRC fails, the previous state is still read.
        let mut torn = disk.clone();
        torn[0x300 + 20] ^= 0x55;
        std::fs::write(&file, &torn).unwrap();
        let state = boot.load().unwrap();
        assert_eq!(state, BootState::new(&[Slot::B, Slot::A], 3, 3).unwrap());
    }

    #[test]
    fn unchanged_state_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), false);
        let file = dir.path().join("env");
        let mut disk = vec![0u8; 0x300];
        let e = env(&[
            ("BOOT_ORDER", "A B"),
            ("BOOT_A_LEFT", "3"),
            ("BOOT_B_LEFT", "3"),
        ]);
        disk[0x200..].copy_from_slice(&encode_copy(&e, 0x100, None).unwrap());
        std::fs::write(&file, &disk).unwrap();
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let boot = UBootBootControl::new(cfg);
        boot.mark_good(Slot::A).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            modified
        );
    }

    #[test]
    fn invalid_environment_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), true);
        let file = dir.path().join("env");
        std::fs::write(&file, vec![0xffu8; 0x400]).unwrap();
        let boot = UBootBootControl::new(cfg);
        let err = boot.mark_trial(Slot::B).unwrap_err();
        assert!(matches!(err, BootError::NoValidEnvironment { .. }), "{err}");
        assert!(err.to_string().contains("saveenv"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), vec![0xffu8; 0x400]);
        let short = UBootBootControl::new(UBootEnvConfig {
            primary: EnvLocation {
                device: PathBuf::from("/nonexistent/env"),
                offset: 0,
            },
            ..config(dir.path(), false)
        });
        assert!(matches!(short.load(), Err(BootError::Io { .. })));
    }

    #[test]
    fn non_text_boot_variables_are_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        let mut data = vec![0u8; 0x100];
        data[4..19].copy_from_slice(b"BOOT_ORDER=\xff\0\0\0");
        let crc = crc32fast::hash(&data[4..]);
        data[..4].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&file, &data).unwrap();
        assert!(decode_copy(&data, false).unwrap().is_some());
        let boot = UBootBootControl::new(UBootEnvConfig {
            primary: EnvLocation {
                device: file,
                offset: 0,
            },
            ..config(dir.path(), false)
        });
        assert!(matches!(boot.load(), Err(BootError::Malformed { .. })));
    }
}
