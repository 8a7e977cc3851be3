//! Building blocks of `suit-agent`, the device update daemon (DESIGN.md §5, §7, §8).
//!
//! The agent does all the I/O of an update and decides no trust: the TA does. These modules are
//! the agent's plumbing, each usable and testable on its own:
//!
//! | module | what |
//! |---|---|
//! | [`config`] | the TOML config file (`/etc/suit-agent/config.toml`), strictly parsed |
//! | [`bootctl`] | A/B boot control with RAUC semantics: U-Boot environment or a text file |
//! | [`fetch`] | downloads (HTTP/HTTPS with resume, retries and a size bound) and local copies into staging |
//! | [`journal`] | the agent's crash-safe record of where an update is |
//! | [`policy`] | the device's say: authorization hook and battery, reported to the TA |
//! | [`staging`] | the staging directory: where envelopes and payloads wait for the TA's approval |
//! | [`atomic`] | durable file replacement (temp file, fsync, rename, fsync of the directory) |
//! | [`storage`] | a slot's block device or file: what it holds after an install, its read-back check |
//! | [`update`] | the update flows on top of them: install, boot-check, confirm, rollback, check, daemon |
//! | [`cli`] | the `suit-agent` command line |

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod atomic;
pub mod bootctl;
pub mod cli;
pub mod config;
pub mod ddi;
pub mod fetch;
pub mod journal;
pub mod policy;
pub mod staging;
pub mod storage;
pub mod update;
pub mod verity;

/// One of the two A/B slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Slot {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl Slot {
    /// Both slots, A first.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// The slot's name as the boot state writes it: `A` or `B`.
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A slot name other than `A` or `B`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown slot {0:?} (expected A or B)")]
pub struct UnknownSlot(pub String);

impl FromStr for Slot {
    type Err = UnknownSlot;

    /// Accepts `A` and `B`, in either case.
    fn from_str(text: &str) -> Result<Slot, UnknownSlot> {
        match text {
            "A" | "a" => Ok(Slot::A),
            "B" | "b" => Ok(Slot::B),
            other => Err(UnknownSlot(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_round_trip() {
        for slot in Slot::ALL {
            assert_eq!(slot.name().parse::<Slot>(), Ok(slot));
            assert_eq!(slot.other().other(), slot);
            assert_ne!(slot.other(), slot);
        }
        assert_eq!("b".parse::<Slot>(), Ok(Slot::B));
        assert_eq!("C".parse::<Slot>(), Err(UnknownSlot("C".into())));
        assert!("".parse::<Slot>().is_err());
    }
}
