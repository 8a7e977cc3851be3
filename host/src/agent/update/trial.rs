//! After the install: the trial boot's `boot-check`, `confirm` and `rollback` (DESIGN.md §5,
//! step 7), the factory's confirmation without a trial, and BOOT_VERIFY for the boot stage.

use std::fs::File;

use suit_shared::abi::{Info, InstallState, LastOutcome, PendingInstall};

use super::writer::Metered;
use super::{io_err, Agent, AgentError, BootApproval, BootCheck};
use crate::agent::journal::{Journal, Outcome, OutcomeResult, Step, UpdateRecord};
use crate::agent::Slot;

impl Agent {
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
                    self.reboot()?;
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
            self.close_update(&mut journal)?;
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
            components.push((c.component_id.clone(), path, c.verity.clone()));
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
            self.close_update(&mut journal)?;
            if vanished {
                let alarm = AgentError::InstallVanished {
                    slot: booted,
                    sequence_number: update.sequence_number,
                };
                tracing::error!("ALARM: {alarm}");
                self.boot.mark_bad(booted)?;
                // A signed report when the TA has one (REPORT covers this session only).
                self.file_report();
                self.reboot()?;
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
        self.close_update(journal)?;
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
        self.close_update(&mut journal)?;
        Ok(message)
    }

    /// Ends the update in progress once its outcome is in `journal`: forgets it, saves the
    /// journal and empties the staging directory.
    fn close_update(&mut self, journal: &mut Journal) -> Result<(), AgentError> {
        journal.update = None;
        self.journal.save(journal)?;
        Ok(self.staging.remove_all_except(None)?)
    }
}

/// Whether the TA's state shows `update` confirmed: the last outcome is a confirmation and
/// every component's floor reached the update's sequence number (floors rise only at CONFIRM).
fn confirmed_by_ta(info: &Info, update: &UpdateRecord) -> bool {
    info.last_outcome == LastOutcome::Confirmed
        && update.components.iter().all(|c| {
            info.floors
                .iter()
                .any(|(id, floor)| *id == c.id && *floor >= update.sequence_number)
        })
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
