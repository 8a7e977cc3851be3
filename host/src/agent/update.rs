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

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use suit_shared::abi::{
    Info, InstallState, LastOutcome, PayloadSource, PendingInstall, Plan, PlanItem,
};
use suit_shared::manifest::ComponentId;
use suit_shared::Category;

use super::bootctl::{self, BootControl, BootError};
use super::config::{ComponentConfig, ComponentIdBuf, Config};
use super::fetch::{FetchError, Fetcher, Progress, Source};
use super::journal::{
    ComponentRecord, ComponentState, Journal, JournalError, JournalStore, Outcome, OutcomeResult,
    Step, UpdateRecord,
};
use super::staging::{Staging, StagingError};
use super::storage::VerifyError;
use super::Slot;
use crate::tee::{Tee, TeeError};

/// Bytes a GCM ciphertext is longer than its plaintext (the tag).
const AEAD_TAG_LEN: u64 = 16;

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
    /// The health check of a trial boot failed.
    #[error("health check failed: {0}")]
    Unhealthy(String),
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
            AgentError::Plan(_) | AgentError::Config(_) | AgentError::InstallVanished { .. } => {
                Category::Policy
            }
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
    pub components: Vec<(ComponentIdBuf, u64)>,
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
    pub components: Vec<(ComponentIdBuf, PathBuf, suit_shared::verity::VerityParams)>,
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
            tee: Box::new(ChunkLimited {
                limit: config.chunk_size.get(),
                inner: tee,
            }),
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

    fn component_config(&self, id: &[Vec<u8>]) -> Result<&ComponentConfig, AgentError> {
        let id = ComponentId(id.iter().map(Vec::as_slice).collect());
        self.config.component(&id).ok_or_else(|| {
            AgentError::Plan(format!("the manifest installs component {id}, which this device's configuration does not map to a slot"))
        })
    }

    fn pending_slot(&self, pending: &PendingInstall) -> Result<Slot, AgentError> {
        self.slot_of_number(pending.slot)
    }

    /// Installs the envelope at `source` (URL or path) into the inactive slot and arms a trial
    /// boot of it. Resumes an interrupted install of the same envelope.
    pub fn install(&mut self, source: &str) -> Result<Installed, AgentError> {
        self.install_into(source, None)
    }

    /// [`Self::install`] into `target` (default: the inactive slot); the factory installs the
    /// first image into a given slot this way.
    pub fn install_into(
        &mut self,
        source: &str,
        target: Option<Slot>,
    ) -> Result<Installed, AgentError> {
        let _lock = self.journal.lock()?;
        let mut journal = self.journal.load()?;
        let info = self.tee.get_info()?;
        if let InstallState::Trial(pending) = &info.install {
            return Err(AgentError::PendingTrial(self.pending_slot(pending)?));
        }
        let target = match target {
            Some(slot) => slot,
            None => self.booted_slot()?.other(),
        };
        let slot_number = self.slot_number(target)?;

        tracing::info!("fetching the envelope from {source}");
        let envelope_path = self.staging.incoming_envelope();
        let envelope = self.fetch_envelope(source, &envelope_path, &info)?;

        tracing::info!("asking the TA to verify the envelope for slot {target}");
        let plan =
            match self
                .tee
                .load_manifest_with_nonce(&envelope, slot_number, self.nonce.as_deref())
            {
                Ok(plan) => plan,
                Err(e) => {
                    let _ = std::fs::remove_file(&envelope_path);
                    journal.last_outcome = Some(aborted_outcome(&[], 0, target, &e));
                    self.journal.save(&journal)?;
                    self.file_report();
                    return Err(e.into());
                }
            };
        let digest = plan.manifest_digest.as_bytes().to_vec();
        let resumed = journal
            .update
            .as_ref()
            .is_some_and(|u| u.manifest_digest == digest && u.target_slot == target);
        let update_dir = self.staging.update(&digest)?;
        std::fs::rename(&envelope_path, update_dir.envelope())
            .map_err(io_err("move", &envelope_path))?;
        if resumed {
            tracing::info!("resuming the interrupted install of this envelope");
        } else {
            // A different update was interrupted: its staging goes.
            self.staging.remove_all_except(Some(&digest))?;
            let components = plan
                .items
                .iter()
                .map(|item| ComponentRecord {
                    index: item.index,
                    id: ComponentIdBuf(item.component_id.clone()),
                    size: item.size.unwrap_or(0),
                    state: ComponentState::Pending,
                })
                .collect();
            journal.update = Some(UpdateRecord::new(
                digest.clone(),
                plan.sequence_number,
                source.to_string(),
                target,
                components,
            ));
        }
        self.journal.save(&journal)?;

        let result = self.carry_out(&plan, &envelope, target, &mut journal, &update_dir);
        if result.is_err() {
            // The TA session drops everything uncommitted; the journal keeps the staged
            // payloads so that a retry resumes.
            let _ = self.tee.abort();
        }
        self.file_report();
        result
    }

    fn carry_out(
        &mut self,
        plan: &Plan,
        envelope: &[u8],
        target: Slot,
        journal: &mut Journal,
        update_dir: &super::staging::UpdateStaging,
    ) -> Result<Installed, AgentError> {
        let env = suit_shared::envelope::Envelope::decode(envelope)
            .map_err(|e| AgentError::Plan(e.to_string()))?;
        // 1. Stage every payload, bounded by the plan.
        for (n, item) in plan.items.iter().enumerate() {
            let staged = update_dir.payload(item.index);
            if record_state(journal, n).is_staged() && staged.exists() {
                continue;
            }
            let bound = fetch_bound(item)?;
            match &item.source {
                PayloadSource::Uri(uri) => {
                    tracing::info!(
                        "downloading component {} from {uri}",
                        display_id(&item.component_id)
                    );
                    let mut progress = (self.progress)();
                    self.fetcher
                        .fetch(&Source::parse(uri)?, &staged, bound, progress.as_mut())?;
                }
                PayloadSource::Integrated(key) => {
                    let data = env.integrated(key).ok_or_else(|| {
                        AgentError::Plan(format!(
                            "the envelope does not carry the integrated payload {key}"
                        ))
                    })?;
                    write_synced(&staged, data)?;
                }
                PayloadSource::Content(bytes) => write_synced(&staged, bytes)?,
            }
            set_state(journal, n, ComponentState::Staged);
            advance_if(journal, Step::Staged, |u| {
                u.all_components(ComponentState::is_staged)
            });
            self.journal.save(journal)?;
        }

        // 2. Approve: nothing is written before every token exists.
        let mut approvals = Vec::new();
        for (n, item) in plan.items.iter().enumerate() {
            let staged = update_dir.payload(item.index);
            let mut file = File::open(&staged).map_err(io_err("open", &staged))?;
            tracing::info!(
                "streaming component {} through the TA",
                display_id(&item.component_id)
            );
            let approval = match self.tee.approve(item.index, &mut file) {
                Ok(approval) => approval,
                Err(e) => return Err(self.refused(e.into(), journal, n, &staged)),
            };
            set_state(
                journal,
                n,
                ComponentState::Approved {
                    token: approval.token.clone(),
                },
            );
            approvals.push(approval);
        }
        advance_if(journal, Step::Approved, |_| true);
        self.journal.save(journal)?;

        // 3. Write the inactive slot, sync, read back.
        for (n, (item, approval)) in plan.items.iter().zip(&approvals).enumerate() {
            let slot_path = self
                .component_config(&item.component_id)?
                .target(target)
                .path
                .clone();
            let staged = update_dir.payload(item.index);
            tracing::info!(
                "writing component {} to {}",
                display_id(&item.component_id),
                slot_path.display()
            );
            let written = self
                .write_slot(item, &approval.token, &staged, &slot_path)
                .and_then(|()| {
                    super::storage::verify(&slot_path, approval.size, &approval.digest).map_err(
                        |reason| match reason {
                            VerifyError::Io(source) => AgentError::Io {
                                action: "read back",
                                path: slot_path.clone(),
                                source,
                            },
                            reason => AgentError::ReadBack {
                                component: display_id(&item.component_id),
                                path: slot_path.clone(),
                                reason,
                            },
                        },
                    )
                })
                // The dm-verity tree after the image: the boot stage mounts the slot through it.
                .and_then(|()| {
                    super::verity::write_tree(
                        &slot_path,
                        approval.size,
                        super::verity::salt_of(item),
                    )
                    .map(|_| ())
                    .map_err(io_err("write the dm-verity tree to", &slot_path))
                });
            if let Err(e) = written {
                return Err(self.refused(e, journal, n, &staged));
            }
            set_state(
                journal,
                n,
                ComponentState::Written {
                    token: approval.token.clone(),
                },
            );
            self.journal.save(journal)?;
        }
        advance_if(journal, Step::Written, |_| true);
        self.journal.save(journal)?;

        // 4. Commit, then arm the trial boot.
        let tokens: Vec<Vec<u8>> = approvals.iter().map(|a| a.token.clone()).collect();
        self.tee.commit(&tokens)?;
        advance_if(journal, Step::Committed, |_| true);
        self.journal.save(journal)?;
        self.boot.mark_trial(target)?;
        advance_if(journal, Step::TrialArmed, |_| true);
        self.journal.save(journal)?;
        Ok(Installed {
            sequence_number: plan.sequence_number,
            slot: target,
            components: plan
                .items
                .iter()
                .zip(&approvals)
                .map(|(item, a)| (ComponentIdBuf(item.component_id.clone()), a.size))
                .collect(),
        })
    }

    /// Passes `error` on; when it says the staged payload of plan item `n` is bad (the TA
    /// refused its bytes, or the slot does not read back as approved), the payload is dropped
    /// first, so that the next attempt downloads it again instead of resubmitting the same
    /// bytes forever (e.g. after a tampered server has been repaired).
    fn refused(
        &mut self,
        error: AgentError,
        journal: &mut Journal,
        n: usize,
        staged: &Path,
    ) -> AgentError {
        if !matches!(
            error,
            AgentError::Tee(TeeError::Rejected { .. }) | AgentError::ReadBack { .. }
        ) {
            return error;
        }
        tracing::warn!("dropping the staged payload {}: {error}", staged.display());
        // A payload counts as staged only while its file exists, so removing the file is
        // what matters; failures here are logged and the original error is reported.
        if let Err(e) = std::fs::remove_file(staged) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", staged.display());
            }
        }
        set_state(journal, n, ComponentState::Pending);
        if let Err(e) = self.journal.save(journal) {
            tracing::warn!("cannot record the dropped payload in the journal: {e}");
        }
        error
    }

    fn write_slot(
        &mut self,
        item: &PlanItem,
        token: &[u8],
        staged: &Path,
        slot_path: &Path,
    ) -> Result<(), AgentError> {
        let file = File::open(staged).map_err(io_err("open", staged))?;
        let label = format!("writing {}", slot_path.display());
        let total = file.metadata().ok().map(|m| m.len());
        let mut input = Metered::new(file, &label, total, (self.progress)());
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(slot_path)
            .map_err(io_err("open", slot_path))?;
        let written = if item.encryption_info.is_some() {
            // Unverified plaintext until decrypt_stream returns Ok; nothing is committed before.
            self.tee
                .decrypt_stream(item.index, token, &mut input, &mut out)?
        } else {
            io::copy(&mut input, &mut out).map_err(io_err("write", slot_path))?
        };
        // Nothing of the slot's old content stays behind the image.
        super::storage::finish(&out, written).map_err(io_err("finish", slot_path))
    }

    /// At early boot: confirms a trial boot that passes its health check, rolls back after a
    /// failed trial, arms a committed trial that was never armed (power cut), or, with
    /// nothing pending, marks the running slot good.
    pub fn boot_check(&mut self) -> Result<BootCheck, AgentError> {
        let _lock = self.journal.lock()?;
        let booted = self.booted_slot()?;
        let info = self.tee.get_info()?;
        let mut journal = self.journal.load()?;
        let InstallState::Trial(pending) = &info.install else {
            return self.nothing_pending(booted, &info, journal);
        };
        let pending = pending.clone();
        let pending_slot = self.pending_slot(&pending)?;
        if booted == pending_slot {
            return match self.health_check() {
                Ok(()) => match self.confirm_running(&pending, booted, &mut journal) {
                    // The install may have vanished while it was being confirmed.
                    Err(e) => match self.tee.get_info() {
                        Ok(now) if now.install == InstallState::Idle => {
                            tracing::warn!("confirming slot {booted} failed: {e}");
                            self.nothing_pending(booted, &now, journal)
                        }
                        _ => Err(e),
                    },
                    confirmed => confirmed,
                },
                Err(e) => {
                    // Fall back on the next boot; the old slot's boot-check rolls back.
                    self.boot.mark_bad(booted)?;
                    tracing::error!("trial boot of slot {booted} is unhealthy ({e}); marked bad, falling back at the next boot");
                    if let Some(cmd) = &self.config.reboot_command {
                        run_command(cmd, Duration::from_secs(60)).map_err(AgentError::Plan)?;
                    }
                    Err(e)
                }
            };
        }
        let state = self.boot.load()?;
        let armed = journal
            .update
            .as_ref()
            .is_some_and(|u| u.step >= Step::TrialArmed);
        if state.attempts_left(pending_slot) == 0 {
            // The trial was tried and the bootloader came back here: roll back.
            self.tee.rollback()?;
            self.boot.mark_good(booted)?;
            journal.last_outcome = Some(outcome(
                &pending,
                pending_slot,
                OutcomeResult::RolledBack,
                Some("the trial boot failed".into()),
            ));
            journal.update = None;
            self.journal.save(&journal)?;
            self.staging.remove_all_except(None)?;
            self.file_report();
            return Ok(BootCheck::RolledBack {
                failed: pending_slot,
                running: booted,
            });
        }
        if !armed {
            // Committed but the trial was never armed (interrupted right after COMMIT).
            self.boot.mark_trial(pending_slot)?;
            if let Some(u) = journal.update.as_mut() {
                u.advance(Step::TrialArmed);
            }
            self.journal.save(&journal)?;
        }
        Ok(BootCheck::TrialPending(pending_slot))
    }

    /// Factory: confirms the install just committed to `slot` without a trial boot (the
    /// factory flashed it; `suit-agent factory-install`). The TA checks the slot's content as
    /// for any CONFIRM and records the slot as good.
    pub fn factory_confirm(&mut self, slot: Slot) -> Result<BootCheck, AgentError> {
        let _lock = self.journal.lock()?;
        let info = self.tee.get_info()?;
        let InstallState::Trial(pending) = info.install else {
            return Err(AgentError::NothingToDo(
                "no install is pending confirmation".into(),
            ));
        };
        if self.pending_slot(&pending)? != slot {
            return Err(AgentError::Plan(format!(
                "the pending install is not in slot {slot}"
            )));
        }
        let mut journal = self.journal.load()?;
        self.confirm_running(&pending, slot, &mut journal)
    }

    /// What the TA approves to boot from `slot`: per component, its device or file and the
    /// dm-verity parameters (BOOT_VERIFY). A refusal is [`AgentError::Tee`].
    pub fn boot_verify(&mut self, slot: Slot) -> Result<BootApproval, AgentError> {
        let record = self.tee.boot_verify(self.slot_number(slot)?)?;
        let mut components = Vec::new();
        for c in &record.components {
            let path = self
                .component_config(&c.component_id)?
                .target(slot)
                .path
                .clone();
            components.push((
                ComponentIdBuf(c.component_id.clone()),
                path,
                c.verity.clone(),
            ));
        }
        Ok(BootApproval {
            slot,
            sequence_number: record.sequence_number,
            status: record.status,
            components,
        })
    }

    /// `boot-check` when the TA holds no pending install. An install the journal says was
    /// committed is forgotten — unless its trial slot is the one running and the TA did not
    /// confirm it: then the install vanished behind the agent's back (another TEE client
    /// rolled it back, or the TA's storage was restored), and the alarm is raised: the slot,
    /// which nothing confirmed, is marked bad, the outcome is journaled, the device reboots
    /// into the other slot (reboot-command) and [`AgentError::InstallVanished`] is returned.
    fn nothing_pending(
        &mut self,
        booted: Slot,
        info: &Info,
        mut journal: Journal,
    ) -> Result<BootCheck, AgentError> {
        let committed = journal.update.take().filter(|u| u.step >= Step::Committed);
        if let Some(update) = committed {
            let vanished = update.target_slot == booted && !confirmed_by_ta(info, &update);
            let (result, message) = if vanished {
                (
                    OutcomeResult::Vanished,
                    "the TA dropped the committed install during its trial",
                )
            } else if update.target_slot == booted {
                // Confirmed by the TA, but the journal was not updated (power cut).
                (OutcomeResult::Confirmed, "confirmed before an interruption")
            } else {
                (
                    OutcomeResult::Aborted,
                    "the TA dropped the committed install before its trial",
                )
            };
            journal.last_outcome = Some(Outcome {
                manifest_digest: update.manifest_digest.clone(),
                sequence_number: update.sequence_number,
                slot: update.target_slot,
                result,
                message: Some(message.into()),
                finished_at: super::journal::unix_now(),
            });
            self.journal.save(&journal)?;
            self.staging.remove_all_except(None)?;
            if vanished {
                let alarm = AgentError::InstallVanished {
                    slot: booted,
                    sequence_number: update.sequence_number,
                };
                tracing::error!("ALARM: {alarm}");
                self.boot.mark_bad(booted)?;
                // A signed report when the TA has one (REPORT covers this session only).
                self.file_report();
                if let Some(cmd) = &self.config.reboot_command {
                    run_command(cmd, Duration::from_secs(60)).map_err(AgentError::Plan)?;
                }
                return Err(alarm);
            }
        }
        // The bootloader took one attempt for this boot; a slot that boots with nothing
        // pending is good, so its attempts are restored (RAUC's mark-good at every boot).
        // Without this, the third ordinary boot would fall back to the other slot.
        self.boot.mark_good(booted)?;
        Ok(BootCheck::Idle(booted))
    }

    /// Runs the health check and confirms the running trial slot (`suit-agent confirm`).
    pub fn confirm(&mut self) -> Result<BootCheck, AgentError> {
        let _lock = self.journal.lock()?;
        let booted = self.booted_slot()?;
        let info = self.tee.get_info()?;
        let InstallState::Trial(pending) = info.install else {
            return Err(AgentError::NothingToDo(
                "no install is pending confirmation".into(),
            ));
        };
        let pending_slot = self.pending_slot(&pending)?;
        if booted != pending_slot {
            return Err(AgentError::Plan(format!(
                "the pending install is in slot {pending_slot} but slot {booted} is running: reboot into it first"
            )));
        }
        self.health_check()?;
        let mut journal = self.journal.load()?;
        self.confirm_running(&pending, booted, &mut journal)
    }

    fn confirm_running(
        &mut self,
        pending: &PendingInstall,
        booted: Slot,
        journal: &mut Journal,
    ) -> Result<BootCheck, AgentError> {
        for (i, component) in pending.components.iter().enumerate() {
            let path = self
                .component_config(&component.component_id)?
                .target(booted)
                .path
                .clone();
            let f = File::open(&path).map_err(io_err("open", &path))?;
            let label = format!("verifying {}", path.display());
            let mut metered = Metered::new(f, &label, Some(component.size), (self.progress)());
            self.tee
                .confirm_stream(i as u32, &mut metered, component.size)?;
            metered.finish();
        }
        let confirmed = self.tee.confirm();
        self.file_report();
        confirmed?;
        self.boot.mark_good(booted)?;
        journal.last_outcome = Some(outcome(pending, booted, OutcomeResult::Confirmed, None));
        journal.update = None;
        self.journal.save(journal)?;
        self.staging.remove_all_except(None)?;
        Ok(BootCheck::Confirmed {
            slot: booted,
            sequence_number: pending.sequence_number,
        })
    }

    /// Drops the pending or unfinished install (`suit-agent rollback`): the TA forgets it
    /// (floors unchanged) and the boot control returns to the running slot — or, on the trial
    /// slot itself, falls back at the next boot.
    pub fn rollback(&mut self) -> Result<String, AgentError> {
        let _lock = self.journal.lock()?;
        let booted = self.booted_slot()?;
        let info = self.tee.get_info()?;
        let mut journal = self.journal.load()?;
        let message = match info.install {
            InstallState::Trial(pending) => {
                let pending_slot = self.pending_slot(&pending)?;
                self.tee.rollback()?;
                if booted == pending_slot {
                    self.boot.mark_bad(booted)?;
                } else {
                    self.boot.mark_good(booted)?;
                }
                journal.last_outcome = Some(outcome(
                    &pending,
                    pending_slot,
                    OutcomeResult::RolledBack,
                    Some("rolled back on request".into()),
                ));
                format!("dropped the pending install of slot {pending_slot}; the device boots slot {} next", pending_slot.other())
            }
            InstallState::Idle if journal.update.is_some() => {
                "cancelled the unfinished install".to_string()
            }
            InstallState::Idle => {
                return Err(AgentError::NothingToDo("no install to roll back".into()))
            }
        };
        journal.update = None;
        self.journal.save(&journal)?;
        self.staging.remove_all_except(None)?;
        Ok(message)
    }

    /// Fetches the envelope at `source` into `path`, no larger than the TA accepts, and reads it.
    fn fetch_envelope(
        &mut self,
        source: &str,
        path: &Path,
        info: &Info,
    ) -> Result<Vec<u8>, AgentError> {
        let mut progress = (self.progress)();
        let limit = u64::from(info.max_envelope);
        self.fetcher
            .fetch(&Source::parse(source)?, path, limit, progress.as_mut())?;
        std::fs::read(path).map_err(io_err("read", path))
    }

    /// Asks the TA whether the envelope at `source` is an applicable update newer than what is
    /// installed, without changing anything; returns its plan.
    pub fn check(&mut self, source: &str) -> Result<Plan, AgentError> {
        let info = self.tee.get_info()?;
        let path = self.staging.root().join("check.suit");
        let envelope = self.fetch_envelope(source, &path, &info)?;
        let _ = std::fs::remove_file(&path);
        let target = self.booted_slot()?.other();
        let plan = match self.tee.load_manifest(&envelope, self.slot_number(target)?) {
            Ok(plan) => plan,
            Err(TeeError::Rejected { rejection, .. })
                if rejection.category == Category::Rollback =>
            {
                return Err(AgentError::NothingToDo(format!(
                    "no newer update: {}",
                    rejection.message
                )))
            }
            Err(e) => return Err(e.into()),
        };
        self.tee.abort()?;
        let current = plan
            .items
            .iter()
            .filter_map(|item| {
                info.floors
                    .iter()
                    .find(|(id, _)| *id == item.component_id)
                    .map(|(_, f)| *f)
            })
            .min();
        if current.is_some_and(|floor| floor >= plan.sequence_number) {
            return Err(AgentError::NothingToDo(format!(
                "up to date: sequence number {} is installed",
                plan.sequence_number
            )));
        }
        Ok(plan)
    }

    /// The daemon: polls the channel every poll interval and installs what `check` finds;
    /// reboots with the configured command after an install. Never returns unless the
    /// configuration has no channel.
    pub fn daemon(&mut self) -> Result<(), AgentError> {
        let channel = self.config.channel_url.clone().ok_or_else(|| {
            AgentError::Config("the daemon needs channel-url in the configuration".into())
        })?;
        loop {
            match self.check(channel.as_str()) {
                Ok(plan) => {
                    tracing::info!("update available: sequence number {}", plan.sequence_number);
                    match self.install(channel.as_str()) {
                        Ok(installed) => {
                            tracing::info!(
                                "installed sequence {} into slot {}; reboot due",
                                installed.sequence_number,
                                installed.slot
                            );
                            if let Some(cmd) = &self.config.reboot_command {
                                run_command(cmd, Duration::from_secs(60))
                                    .map_err(AgentError::Plan)?;
                            }
                        }
                        Err(e) => tracing::warn!("install failed: {e}"),
                    }
                }
                Err(AgentError::NothingToDo(msg)) => tracing::info!("{msg}"),
                Err(e) => tracing::warn!("channel check failed: {e}"),
            }
            std::thread::sleep(self.config.poll_interval);
        }
    }

    /// Keeps the TA's signed SUIT report of this session's attempt in `<state-dir>/reports`
    /// (the newest [`KEPT_REPORTS`]) and posts it to the report URL when one is configured.
    /// A report that cannot be made, kept or sent is logged, never fatal: the update itself
    /// is already decided.
    fn file_report(&mut self) {
        let report = match self.tee.report(self.nonce.as_deref()) {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!("no SUIT report from the TA: {e}");
                return;
            }
        };
        let dir = self.config.state_dir.join("reports");
        let name = format!(
            "{}-{:05}.suit-report",
            super::journal::unix_now(),
            std::process::id() % 100_000
        );
        let kept = std::fs::create_dir_all(&dir)
            .and_then(|()| super::atomic::replace_file(&dir.join(&name), &report))
            .and_then(|()| prune_reports(&dir));
        match kept {
            Ok(()) => tracing::info!("SUIT report kept in {}", dir.join(&name).display()),
            Err(e) => tracing::warn!("cannot keep the SUIT report in {}: {e}", dir.display()),
        }
        if let Some(url) = &self.config.report_url {
            match self
                .fetcher
                .post(url, suit_shared::report::CONTENT_TYPE, &report)
            {
                Ok(()) => tracing::info!("SUIT report sent to {url}"),
                Err(e) => tracing::warn!("cannot send the SUIT report to {url}: {e}"),
            }
        }
    }

    fn health_check(&self) -> Result<(), AgentError> {
        match &self.config.health_check {
            None => Ok(()),
            Some(check) => {
                run_command(&check.command, check.timeout).map_err(AgentError::Unhealthy)
            }
        }
    }
}

/// A TA session whose streams use chunks of at most the configured `chunk-size` (the TA's
/// own maximum still applies).
struct ChunkLimited {
    inner: Box<dyn Tee>,
    limit: usize,
}

impl Tee for ChunkLimited {
    fn backend(&self) -> crate::tee::Backend {
        self.inner.backend()
    }

    fn invoke(
        &mut self,
        command: suit_shared::abi::CommandId,
        request: &[u8],
        data_in: Option<&[u8]>,
        response_capacity: usize,
        data_out_capacity: Option<usize>,
    ) -> Result<crate::tee::RawOutput, TeeError> {
        self.inner.invoke(
            command,
            request,
            data_in,
            response_capacity,
            data_out_capacity,
        )
    }

    fn chunk_size(&mut self) -> Result<usize, TeeError> {
        Ok(self.inner.chunk_size()?.min(self.limit))
    }
}

/// Signed reports kept in the state directory.
const KEPT_REPORTS: usize = 32;

/// Removes all but the newest [`KEPT_REPORTS`] reports (names sort by time).
fn prune_reports(dir: &Path) -> io::Result<()> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "suit-report"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(KEPT_REPORTS);
    for old in &names[..excess] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// Runs `command` (no shell) with a timeout; Err describes the failure.
fn run_command(command: &[String], timeout: Duration) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or("empty command")?;
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().map_err(|e| format!("{program}: {e}"))? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(format!("{program} exited with {status}")),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {timeout:?}"));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn display_id(id: &[Vec<u8>]) -> String {
    ComponentId(id.iter().map(Vec::as_slice).collect()).to_string()
}

/// The most bytes a component's download may have: the plan's fetched size, else its
/// plaintext size (plus the AEAD tag when encrypted). Without either the agent refuses to
/// download: an unbounded payload could fill the disk.
fn fetch_bound(item: &PlanItem) -> Result<u64, AgentError> {
    if let Some(size) = item.fetch_size {
        return Ok(size);
    }
    match (item.size, item.encryption_info.is_some()) {
        (Some(size), false) => Ok(size),
        (Some(size), true) => Ok(size + AEAD_TAG_LEN),
        (None, _) => Err(AgentError::Plan(format!(
            "the manifest gives no image-size for component {}; the agent does not download unbounded payloads",
            display_id(&item.component_id)
        ))),
    }
}

/// Whether the TA's state shows `update` confirmed: the last outcome is a confirmation and
/// every component's floor reached the update's sequence number (floors rise only at CONFIRM).
fn confirmed_by_ta(info: &Info, update: &UpdateRecord) -> bool {
    info.last_outcome == LastOutcome::Confirmed
        && update.components.iter().all(|c| {
            info.floors
                .iter()
                .any(|(id, floor)| *id == c.id.0 && *floor >= update.sequence_number)
        })
}

fn record_state(journal: &Journal, n: usize) -> ComponentState {
    journal
        .update
        .as_ref()
        .and_then(|u| u.components.get(n))
        .map(|c| c.state.clone())
        .unwrap_or(ComponentState::Pending)
}

fn set_state(journal: &mut Journal, n: usize, state: ComponentState) {
    if let Some(c) = journal
        .update
        .as_mut()
        .and_then(|u| u.components.get_mut(n))
    {
        c.state = state;
    }
    if let Some(u) = journal.update.as_mut() {
        u.touch();
    }
}

/// Records `step` once `reached` holds, never moving the journal backwards.
fn advance_if(journal: &mut Journal, step: Step, reached: impl Fn(&UpdateRecord) -> bool) {
    if let Some(u) = journal.update.as_mut() {
        if u.step < step && reached(u) {
            u.advance(step);
        }
    }
}

fn outcome(
    pending: &PendingInstall,
    slot: Slot,
    result: OutcomeResult,
    message: Option<String>,
) -> Outcome {
    Outcome {
        manifest_digest: pending.manifest_digest.as_bytes().to_vec(),
        sequence_number: pending.sequence_number,
        slot,
        result,
        message,
        finished_at: super::journal::unix_now(),
    }
}

fn aborted_outcome(digest: &[u8], sequence_number: u64, slot: Slot, error: &TeeError) -> Outcome {
    Outcome {
        manifest_digest: digest.to_vec(),
        sequence_number,
        slot,
        result: OutcomeResult::Aborted,
        message: Some(error.to_string()),
        finished_at: super::journal::unix_now(),
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), AgentError> {
    let mut f = File::create(path).map_err(io_err("create", path))?;
    f.write_all(data).map_err(io_err("write", path))?;
    f.sync_all().map_err(io_err("sync", path))
}

/// A reader that reports how much of it was read to a [`Progress`] (TA streaming and slot
/// writes take as long as downloads on slow devices).
struct Metered<R> {
    inner: R,
    done: u64,
    progress: Box<dyn Progress>,
}

impl<R: Read> Metered<R> {
    fn new(inner: R, label: &str, total: Option<u64>, mut progress: Box<dyn Progress>) -> Self {
        progress.started(label, 0, total);
        Metered {
            inner,
            done: 0,
            progress,
        }
    }

    fn finish(&mut self) {
        self.progress.finished(self.done);
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.progress.advanced(self.done);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tee::simulator::{SimulatorConfig, SimulatorSession};

    #[test]
    fn streams_use_the_configured_chunk_size_below_the_tas() {
        let dir = tempfile::tempdir().unwrap();
        let session =
            SimulatorSession::connect(SimulatorConfig::new(dir.path(), Vec::new())).unwrap();
        let mut limited = ChunkLimited {
            inner: Box::new(session),
            limit: 64 * 1024,
        };
        assert_eq!(limited.chunk_size().unwrap(), 64 * 1024);
        limited.limit = usize::MAX;
        assert_eq!(
            limited.chunk_size().unwrap(),
            suit_shared::abi::GUARANTEED_CHUNK
        );
    }
}
