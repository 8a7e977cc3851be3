//! Boot control with RAUC semantics (DESIGN.md §7).
//!
//! The bootloader (U-Boot's boot script, or the QEMU image's `/init`) keeps three variables:
//!
//! * `BOOT_ORDER`: the slots in the order they are tried, `A B` or `B A`;
//! * `BOOT_A_LEFT`, `BOOT_B_LEFT`: boot attempts left for each slot.
//!
//! At each boot it picks the first slot of `BOOT_ORDER` whose count is above zero and
//! decrements that count; when no slot has attempts left it resets both to 3. A missing
//! variable means its default (`A B`, 3, 3), as RAUC's U-Boot script does.
//!
//! The agent changes these variables through one trait, [`BootControl`], with two backends:
//! [`file::FileBootControl`] (a text file) and [`uboot::UBootBootControl`] (the U-Boot
//! environment, byte-compatible with `fw_printenv`/`fw_setenv`). The state transitions
//! themselves ([`BootState::trial`], [`BootState::mark_good`], [`BootState::mark_bad`]) do
//! no I/O, so they are tested once for both.

use std::fmt;
use std::path::{Path, PathBuf};

use super::config::BootConfig;
pub use super::config::BOOTED_SLOT_FILE;
use super::Slot;

pub mod file;
pub mod uboot;

/// Boot attempts a good slot gets (RAUC's default).
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// The kernel command line, where bootloaders name the booted slot (`rauc.slot=A`).
pub const KERNEL_CMDLINE: &str = "/proc/cmdline";

/// The boot variables: slot order and attempts left per slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootState {
    order: Vec<Slot>,
    attempts_left: [u32; 2],
}

impl Default for BootState {
    /// `BOOT_ORDER=A B`, 3 attempts each: what a bootloader assumes when nothing is set.
    fn default() -> Self {
        BootState {
            order: vec![Slot::A, Slot::B],
            attempts_left: [DEFAULT_ATTEMPTS; 2],
        }
    }
}

impl BootState {
    /// A state with the given order (each slot at most once) and attempt counts.
    pub fn new(order: &[Slot], a_left: u32, b_left: u32) -> Result<BootState, BootError> {
        check_order(order, "boot state")?;
        Ok(BootState {
            order: order.to_vec(),
            attempts_left: [a_left, b_left],
        })
    }

    /// Slots in the order the bootloader tries them.
    pub fn order(&self) -> &[Slot] {
        &self.order
    }

    /// Boot attempts left for `slot`.
    pub fn attempts_left(&self, slot: Slot) -> u32 {
        self.attempts_left[index(slot)]
    }

    /// The slot the bootloader will start next: the first of the order with attempts left
    /// (or, when none has any, the first of the order, after the reset to 3).
    pub fn next_boot(&self) -> Option<Slot> {
        self.order
            .iter()
            .copied()
            .find(|&slot| self.attempts_left(slot) > 0)
            .or_else(|| self.order.first().copied())
    }

    /// Arranges a one-time trial boot of `slot`: it goes first in the order with one
    /// attempt, so the next boot starts it once and, unless it is marked good while it runs,
    /// the boot after falls back to the other slot, which gets [`DEFAULT_ATTEMPTS`].
    pub fn trial(&mut self, slot: Slot) {
        self.order = vec![slot, slot.other()];
        self.attempts_left[index(slot)] = 1;
        self.attempts_left[index(slot.other())] = DEFAULT_ATTEMPTS;
    }

    /// Marks `slot` good: first in the order with [`DEFAULT_ATTEMPTS`] (RAUC's
    /// `mark-good` + `mark-active`); the other slot stays behind it as the fallback.
    pub fn mark_good(&mut self, slot: Slot) {
        self.order = vec![slot, slot.other()];
        self.attempts_left[index(slot)] = DEFAULT_ATTEMPTS;
    }

    /// Marks `slot` bad and falls back: no attempts left for it, the other slot goes first
    /// with [`DEFAULT_ATTEMPTS`].
    pub fn mark_bad(&mut self, slot: Slot) {
        self.order = vec![slot.other(), slot];
        self.attempts_left[index(slot)] = 0;
        self.attempts_left[index(slot.other())] = DEFAULT_ATTEMPTS;
    }

    /// The value of `BOOT_ORDER`: slot names separated by spaces.
    pub fn order_text(&self) -> String {
        let names: Vec<&str> = self.order.iter().map(|s| s.name()).collect();
        names.join(" ")
    }

    /// Builds a state from the three variables' values (`None` = not set, the default).
    /// `location` names where they came from, for errors.
    pub fn from_variables(
        order: Option<&str>,
        a_left: Option<&str>,
        b_left: Option<&str>,
        location: &str,
    ) -> Result<BootState, BootError> {
        let malformed = |reason: String| BootError::Malformed {
            location: location.to_string(),
            reason,
        };
        let order = match order {
            None => vec![Slot::A, Slot::B],
            Some(text) => text
                .split_whitespace()
                .map(|name| {
                    name.parse::<Slot>()
                        .map_err(|e| malformed(format!("BOOT_ORDER={text:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let count = |name: &str, value: Option<&str>| match value {
            None => Ok(DEFAULT_ATTEMPTS),
            Some(text) => text
                .trim()
                .parse::<u32>()
                .map_err(|_| malformed(format!("{name}={text:?} is not a count of boot attempts"))),
        };
        let a = count("BOOT_A_LEFT", a_left)?;
        let b = count("BOOT_B_LEFT", b_left)?;
        check_order(&order, location)?;
        Ok(BootState {
            order,
            attempts_left: [a, b],
        })
    }
}

/// Each slot may appear at most once in `BOOT_ORDER`.
fn check_order(order: &[Slot], location: &str) -> Result<(), BootError> {
    let duplicate = order
        .iter()
        .enumerate()
        .any(|(i, slot)| order[..i].contains(slot));
    if duplicate {
        let names: Vec<&str> = order.iter().map(|s| s.name()).collect();
        return Err(BootError::Malformed {
            location: location.to_string(),
            reason: format!("BOOT_ORDER={:?} names a slot twice", names.join(" ")),
        });
    }
    Ok(())
}

impl fmt::Display for BootState {
    /// `BOOT_ORDER="A B" BOOT_A_LEFT=3 BOOT_B_LEFT=3`, as the QEMU image's `/init` logs it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BOOT_ORDER=\"{}\" BOOT_A_LEFT={} BOOT_B_LEFT={}",
            self.order_text(),
            self.attempts_left(Slot::A),
            self.attempts_left(Slot::B)
        )
    }
}

fn index(slot: Slot) -> usize {
    match slot {
        Slot::A => 0,
        Slot::B => 1,
    }
}

/// Reads and changes the boot variables wherever a backend keeps them.
pub trait BootControl {
    /// Where the state lives, for messages (`file /data/boot/bootstate`).
    fn describe(&self) -> String;

    /// Reads the current state.
    fn load(&self) -> Result<BootState, BootError>;

    /// Reads the state, applies `change` and stores the result durably, as one step that
    /// other writers (e.g. `fw_setenv`) cannot interleave with; returns the stored state.
    fn modify(&self, change: &mut dyn FnMut(&mut BootState)) -> Result<BootState, BootError>;

    /// Arranges a one-time trial boot of `slot` ([`BootState::trial`]).
    fn mark_trial(&self, slot: Slot) -> Result<BootState, BootError> {
        self.modify(&mut |state| state.trial(slot))
    }

    /// Marks `slot` good ([`BootState::mark_good`]).
    fn mark_good(&self, slot: Slot) -> Result<BootState, BootError> {
        self.modify(&mut |state| state.mark_good(slot))
    }

    /// Marks `slot` bad and falls back to the other ([`BootState::mark_bad`]).
    fn mark_bad(&self, slot: Slot) -> Result<BootState, BootError> {
        self.modify(&mut |state| state.mark_bad(slot))
    }
}

/// The backend a [`BootConfig`] describes.
pub fn open(config: &BootConfig) -> Box<dyn BootControl> {
    match config {
        BootConfig::File(file) => Box::new(file::FileBootControl::new(&file.path)),
        BootConfig::UBoot(env) => Box::new(uboot::UBootBootControl::new(env.clone())),
    }
}

/// The slot this system booted from: the content of [`BOOTED_SLOT_FILE`], else `rauc.slot=`
/// or `suit.slot=` on the kernel command line.
pub fn booted_slot() -> Result<Slot, BootError> {
    booted_slot_from(Path::new(BOOTED_SLOT_FILE), Path::new(KERNEL_CMDLINE))
}

/// [`booted_slot`] with explicit paths for the booted-slot file and the command line.
pub fn booted_slot_from(booted_slot_file: &Path, cmdline: &Path) -> Result<Slot, BootError> {
    match std::fs::read_to_string(booted_slot_file) {
        Ok(text) => {
            return text.trim().parse().map_err(|e| BootError::Malformed {
                location: booted_slot_file.display().to_string(),
                reason: format!("{e}"),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(BootError::io("read", booted_slot_file, source)),
    }
    let text = std::fs::read_to_string(cmdline).map_err(|e| BootError::io("read", cmdline, e))?;
    for word in text.split_whitespace() {
        if let Some(value) = word
            .strip_prefix("rauc.slot=")
            .or_else(|| word.strip_prefix("suit.slot="))
        {
            return value.parse().map_err(|e| BootError::Malformed {
                location: cmdline.display().to_string(),
                reason: format!("{word}: {e}"),
            });
        }
    }
    Err(BootError::BootedSlotUnknown {
        booted_slot_file: booted_slot_file.to_path_buf(),
        cmdline: cmdline.to_path_buf(),
    })
}

/// Why the boot state could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// Reading or writing the storage failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `lock`, ...).
        action: &'static str,
        /// The file or device.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The stored state cannot be understood.
    #[error("{location}: {reason}")]
    Malformed {
        /// Where the state came from.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// No copy of the U-Boot environment has a valid CRC. The agent does not create one:
    /// an environment holding only the boot variables would hide U-Boot's built-in defaults
    /// (`bootcmd`, ...) and leave the board unbootable.
    #[error("no valid U-Boot environment in {location} (bad CRC); boot U-Boot once and run `saveenv`, or write one with mkenvimage")]
    NoValidEnvironment {
        /// The environment copies that were read.
        location: String,
    },
    /// The variables do not fit in the environment.
    #[error("the U-Boot environment needs {needed} bytes but holds {capacity}")]
    EnvironmentFull {
        /// Bytes the variables need.
        needed: usize,
        /// Bytes available for variables.
        capacity: usize,
    },
    /// A variable name or value cannot be stored in a U-Boot environment.
    #[error("invalid U-Boot variable {name:?}: {reason}")]
    InvalidVariable {
        /// The variable.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Neither the booted-slot file nor the kernel command line names the booted slot.
    #[error("cannot tell which slot is booted: no {} and no rauc.slot= or suit.slot= in {}", booted_slot_file.display(), cmdline.display())]
    BootedSlotUnknown {
        /// The booted-slot file looked at.
        booted_slot_file: PathBuf,
        /// The command line looked at.
        cmdline: PathBuf,
    },
}

impl BootError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> BootError {
        BootError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(order: &[Slot], a: u32, b: u32) -> BootState {
        BootState::new(order, a, b).unwrap()
    }

    #[test]
    fn default_is_a_then_b_with_three_attempts() {
        let s = BootState::default();
        assert_eq!(s.order(), [Slot::A, Slot::B]);
        assert_eq!(
            s.to_string(),
            "BOOT_ORDER=\"A B\" BOOT_A_LEFT=3 BOOT_B_LEFT=3"
        );
        assert_eq!(s.next_boot(), Some(Slot::A));
    }

    #[test]
    fn trial_boots_the_new_slot_once_then_falls_back() {
        let mut s = state(&[Slot::A, Slot::B], 2, 0);
        s.trial(Slot::B);
        assert_eq!(s, state(&[Slot::B, Slot::A], 3, 1));
        assert_eq!(s.next_boot(), Some(Slot::B));
        // The bootloader spends the attempt; not confirmed: A is next.
        s.attempts_left[1] -= 1;
        assert_eq!(s.next_boot(), Some(Slot::A));
    }

    #[test]
    fn mark_good_keeps_the_slot_first_with_full_attempts() {
        let mut s = state(&[Slot::B, Slot::A], 3, 0);
        s.mark_good(Slot::B);
        assert_eq!(s, state(&[Slot::B, Slot::A], 3, 3));
        let mut s = state(&[Slot::A], 1, 3);
        s.mark_good(Slot::A);
        assert_eq!(s, state(&[Slot::A, Slot::B], 3, 3));
    }

    #[test]
    fn mark_bad_falls_back_to_the_other_slot() {
        let mut s = state(&[Slot::B, Slot::A], 1, 1);
        s.mark_bad(Slot::B);
        assert_eq!(s, state(&[Slot::A, Slot::B], 3, 0));
        assert_eq!(s.next_boot(), Some(Slot::A));
    }

    #[test]
    fn next_boot_when_no_attempts_left_is_the_first_slot() {
        assert_eq!(state(&[Slot::B, Slot::A], 0, 0).next_boot(), Some(Slot::B));
        assert_eq!(state(&[], 3, 3).next_boot(), None);
    }

    #[test]
    fn variables_parse_strictly() {
        let s = BootState::from_variables(Some("B A"), Some("0"), Some(" 2 "), "t").unwrap();
        assert_eq!(s, state(&[Slot::B, Slot::A], 0, 2));
        assert_eq!(
            BootState::from_variables(None, None, None, "t").unwrap(),
            BootState::default()
        );
        assert_eq!(
            BootState::from_variables(Some(""), None, None, "t")
                .unwrap()
                .order(),
            []
        );
        for (order, a) in [
            (Some("A C"), Some("1")),
            (Some("A A"), Some("1")),
            (Some("A B A"), Some("1")),
            (Some("A B"), Some("-1")),
            (Some("A B"), Some("three")),
        ] {
            let err = BootState::from_variables(order, a, None, "env").unwrap_err();
            assert!(matches!(err, BootError::Malformed { .. }), "{err}");
            assert!(err.to_string().starts_with("env: "), "{err}");
        }
        assert!(BootState::new(&[Slot::A, Slot::A], 1, 1).is_err());
    }

    #[test]
    fn booted_slot_comes_from_the_file_then_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("booted-slot");
        let cmdline = dir.path().join("cmdline");
        std::fs::write(&cmdline, "console=ttyAMA0 rauc.slot=B panic=-1\n").unwrap();
        assert_eq!(booted_slot_from(&file, &cmdline).unwrap(), Slot::B);
        std::fs::write(&cmdline, "console=ttyAMA0 suit.slot=A\n").unwrap();
        assert_eq!(booted_slot_from(&file, &cmdline).unwrap(), Slot::A);
        std::fs::write(&file, "B\n").unwrap();
        assert_eq!(booted_slot_from(&file, &cmdline).unwrap(), Slot::B);
        std::fs::write(&file, "X\n").unwrap();
        assert!(matches!(
            booted_slot_from(&file, &cmdline),
            Err(BootError::Malformed { .. })
        ));
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&cmdline, "console=ttyAMA0 rauc.slot=system0\n").unwrap();
        assert!(booted_slot_from(&file, &cmdline).is_err());
        std::fs::write(&cmdline, "console=ttyAMA0\n").unwrap();
        let err = booted_slot_from(&file, &cmdline).unwrap_err();
        assert!(matches!(err, BootError::BootedSlotUnknown { .. }), "{err}");
    }
}
