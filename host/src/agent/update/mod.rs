//! The update flows (DESIGN.md §5): install, boot-check, confirm, rollback, check.
//!
//! The agent does all the I/O and none of the trusting:
//! 1. the envelope goes to the TA (LOAD_MANIFEST) before anything else is fetched;
//! 2. payloads come only from the URIs of the TA's verified plan, bounded by its sizes;
//! 3. every staged payload streams through the TA, which returns an approval token;
//! 4. only then is the inactive slot written — plaintext straight from the staging file, or
//!    from DECRYPT_FOR_INSTALL for encrypted payloads — synced and read back;
//! 5. COMMIT records the pending install in the TA, the boot control arms a one-time trial;
//! 6. on the trial boot `boot-check` runs the health check and CONFIRM (the TA re-hashes the
//!    running slot and raises the floors), or marks the slot bad; back on the old slot after a
//!    failed trial it calls ROLLBACK.
//!
//! Every step is recorded in the journal before the next one starts, so a power cut anywhere
//! leaves a state the next run resumes (downloads continue with HTTP Range; approvals and
//! writes, being per TA session, are redone) or cleans up. A staged payload the TA refuses is
//! dropped, so that the next run downloads it again rather than resubmitting it.
//!
//! One module per step, each adding its part of [`Agent`]:
//!
//! | module | step |
//! |---|---|
//! | `install` | install and check: envelope, plan, staging, approval, commit, trial armed; trust-anchor updates to the TA |
//! | `writer` | the slot writer: approved plaintext into the inactive slot |
//! | `streaming` | one-pass install of manifests that bind a dm-verity root (docs/streaming.md) |
//! | `trial` | boot-check, confirm, rollback, the factory's confirmation, BOOT_VERIFY |
//! | `report` | the TA's signed SUIT reports: kept and posted |
//! | `daemon` | the polling daemon |
//! | `fleet` | the daemon driven by a hawkBit DDI fleet server |
//! | `health` | the trial boot's health check and the command runner |
//! | `chunk_limit` | the TEE decorator applying the configured chunk size |

mod chunk_limit;
mod daemon;
mod fleet;
mod health;
mod install;
mod report;
mod streaming;
mod trial;
mod writer;

pub use install::Applied;

use std::io;
use std::path::{Path, PathBuf};

use suit_shared::abi::{Info, PendingInstall};
use suit_shared::component::ComponentId;
use suit_shared::Category;

// The steps' modules name these siblings of `update` as `super::…`.
use super::{atomic, journal, staging, storage, verity};

use super::bootctl::{self, BootControl, BootError};
use super::config::{ComponentConfig, Config};
use super::fetch::{FetchError, Fetcher, Progress};
use super::journal::{Journal, JournalError, JournalStore};
use super::policy::PolicyError;
use super::staging::{Staging, StagingError};
use super::storage::VerifyError;
use super::Slot;
use crate::tee::{Tee, TeeError};
use chunk_limit::ChunkLimited;

/// Why an agent operation failed; [`AgentError::exit_code`] maps it to the CLI's exit codes.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The TA refused or failed.
    #[error("{0}")]
    Tee(#[from] TeeError),
    /// A download failed.
    #[error("download: {0}")]
    Fetch(#[from] FetchError),
    /// The boot control failed.
    #[error("boot control: {0}")]
    Boot(#[from] BootError),
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// The staging directory failed.
    #[error("staging: {0}")]
    Staging(#[from] StagingError),
    /// A file or device could not be used.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or device.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The configuration does not fit the update or the device.
    #[error("configuration: {0}")]
    Config(String),
    /// The plan cannot be carried out safely.
    #[error("{0}")]
    Plan(String),
    /// A written slot does not read back as approved (see [`super::storage`]).
    #[error("component {component}: {} does not read back as the TA approved it ({reason}); the slot is not activated", path.display())]
    ReadBack {
        /// The component.
        component: String,
        /// The slot device or file.
        path: PathBuf,
        /// What differs.
        reason: VerifyError,
    },
    /// Another update is committed and waits for its trial boot.
    #[error("an update to slot {0} is committed and waits for its trial boot: reboot, or run `suit-agent rollback`")]
    PendingTrial(Slot),
    /// The device's facts for the TA (authorization hook, battery) could not be established;
    /// nothing was changed.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// The health check of a trial boot failed.
    #[error("health check failed: {0}")]
    Unhealthy(String),
    /// The fleet server (DDI) failed or answered what the DDI API does not allow.
    #[error("{0}")]
    Fleet(crate::agent::ddi::DdiError),
    /// There is nothing to do (no update, nothing pending).
    #[error("{0}")]
    NothingToDo(String),
    /// The trial slot runs an install the agent committed, but the TA no longer holds it (it
    /// was rolled back by another TEE client, or the TA's storage was restored) and did not
    /// confirm it: an alarm. The slot was marked bad; the device falls back to the other.
    #[error("the TA no longer holds the committed install of sequence {sequence_number} while its trial slot {slot} runs (rolled back by another TEE client, or the TA's storage was restored); slot {slot} is marked bad and the device falls back to slot {}", slot.other())]
    InstallVanished {
        /// The trial slot, running.
        slot: Slot,
        /// The sequence number of the install that vanished.
        sequence_number: u64,
    },
}

impl AgentError {
    /// Exit code of the CLI contract: 1 rejected/failed, 2 configuration, 3 nothing to do,
    /// 4 alarm (the TA's install state contradicts what the agent committed).
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Config(_) => 2,
            AgentError::NothingToDo(_) => 3,
            AgentError::InstallVanished { .. } => 4,
            _ => 1,
        }
    }

    /// The category of a rejection, when the error is one.
    pub fn category(&self) -> Category {
        match self {
            AgentError::Tee(e) => e.category(),
            AgentError::ReadBack { .. } => Category::Digest,
            AgentError::Plan(_)
            | AgentError::Config(_)
            | AgentError::Policy(_)
            | AgentError::InstallVanished { .. } => Category::Policy,
            _ => Category::Resource,
        }
    }
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> AgentError + 'p {
    move |source| AgentError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What `install` did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The manifest's sequence number.
    pub sequence_number: u64,
    /// The slot written and armed for a trial boot.
    pub slot: Slot,
    /// Components written: identifier and plaintext size.
    pub components: Vec<(ComponentId, u64)>,
}

/// What the TA approves to boot from a slot ([`Agent::boot_verify`]).
pub struct BootApproval {
    /// The slot.
    pub slot: Slot,
    /// The sequence number installed there.
    pub sequence_number: u64,
    /// Trial (approved for the pending trial's boots) or good.
    pub status: suit_shared::boot::BootStatus,
    /// Per component: id, device or file, dm-verity parameters.
    pub components: Vec<(ComponentId, PathBuf, suit_shared::verity::VerityParams)>,
}

/// What `boot-check` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootCheck {
    /// Nothing pending; the running slot is in use and was marked good (attempts restored).
    Idle(Slot),
    /// The trial boot passed its health check; the TA raised the floors to this sequence number.
    Confirmed {
        /// The confirmed slot.
        slot: Slot,
        /// The new floor.
        sequence_number: u64,
    },
    /// Back on the old slot after a failed trial: the pending install was dropped.
    RolledBack {
        /// The slot whose trial failed.
        failed: Slot,
        /// The slot running.
        running: Slot,
    },
    /// A committed install waits for its trial boot (armed now if it was not).
    TrialPending(Slot),
}

/// The device update agent: configuration, one TA session, journal, staging, boot control.
pub struct Agent {
    config: Config,
    tee: Box<dyn Tee>,
    journal: JournalStore,
    staging: Staging,
    boot: Box<dyn BootControl>,
    fetcher: Fetcher,
    progress: Box<dyn FnMut() -> Box<dyn Progress>>,
    /// A verifier's nonce for the approval tokens and SUIT reports (`--nonce`).
    nonce: Option<Vec<u8>>,
}

impl Agent {
    /// An agent on `tee`; `progress` makes a progress reporter per download.
    pub fn new(
        config: Config,
        tee: Box<dyn Tee>,
        progress: Box<dyn FnMut() -> Box<dyn Progress>>,
    ) -> Result<Agent, AgentError> {
        let fetcher = Fetcher::new(&config.http, &config.retry)?;
        let staging = Staging::open(&config.staging_dir)?;
        std::fs::create_dir_all(&config.state_dir).map_err(io_err("create", &config.state_dir))?;
        Ok(Agent {
            journal: JournalStore::new(&config.state_dir),
            boot: bootctl::open(&config.boot),
            fetcher,
            staging,
            tee: Box::new(ChunkLimited::new(tee, config.chunk_size.get())),
            config,
            progress,
            nonce: None,
        })
    }

    /// Sets the verifier's nonce that the next install's approval tokens and the SUIT reports
    /// carry (freshness for a server that asked for them).
    pub fn set_nonce(&mut self, nonce: Option<Vec<u8>>) {
        self.nonce = nonce;
    }

    /// The agent's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// GET_INFO of the TA.
    pub fn info(&mut self) -> Result<Info, AgentError> {
        Ok(self.tee.get_info()?)
    }

    /// PROVISION (factory, once).
    pub fn provision(
        &mut self,
        provisioning: &suit_shared::abi::Provisioning,
    ) -> Result<(), AgentError> {
        Ok(self.tee.provision(provisioning)?)
    }

    /// The journal as stored.
    pub fn journal(&self) -> Result<Journal, AgentError> {
        Ok(self.journal.load()?)
    }

    /// The boot control's current state and where it lives.
    pub fn boot_state(&self) -> Result<(String, bootctl::BootState), AgentError> {
        Ok((self.boot.describe(), self.boot.load()?))
    }

    /// The slot the system booted from.
    pub fn booted_slot(&self) -> Result<Slot, AgentError> {
        Ok(bootctl::booted_slot_from(
            &self.config.booted_slot_file,
            Path::new(bootctl::KERNEL_CMDLINE),
        )?)
    }

    /// The component-slot number (SUIT parameter 5) of `slot`, on which all components agree.
    fn slot_number(&self, slot: Slot) -> Result<u64, AgentError> {
        let mut numbers = self
            .config
            .components
            .iter()
            .map(|c| c.target(slot).component_slot);
        let first = numbers
            .next()
            .ok_or_else(|| AgentError::Config("no [[component]] is configured".into()))?;
        if numbers.any(|n| n != first) {
            return Err(AgentError::Config(format!(
                "the components disagree on the component-slot number of slot {slot}"
            )));
        }
        Ok(first)
    }

    /// The slot whose component-slot number is `number`.
    fn slot_of_number(&self, number: u64) -> Result<Slot, AgentError> {
        for slot in Slot::ALL {
            if self.slot_number(slot)? == number {
                return Ok(slot);
            }
        }
        Err(AgentError::Config(format!(
            "no slot is configured with component-slot {number}"
        )))
    }

    fn component_config(&self, id: &ComponentId) -> Result<&ComponentConfig, AgentError> {
        self.config.component(id).ok_or_else(|| {
            AgentError::Plan(format!("the manifest installs component {id}, which this device's configuration does not map to a slot"))
        })
    }

    fn pending_slot(&self, pending: &PendingInstall) -> Result<Slot, AgentError> {
        self.slot_of_number(pending.slot)
    }
}
