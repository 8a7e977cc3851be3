//! Install, step by step (DESIGN.md §5, steps 1–6): fetch the envelope, LOAD_MANIFEST, stage
//! every payload of the verified plan, approve each through the TA, write the inactive slot
//! ([`super::writer`]), COMMIT and arm the trial boot; and `check`, which only plans.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use suit_shared::abi::{DeviceFacts, Info, InstallState, PayloadSource, Plan, PlanItem};
use suit_shared::Category;

use super::{io_err, Agent, AgentError, Installed};
use crate::agent::fetch::Source;
use crate::agent::journal::{
    ComponentRecord, ComponentState, Journal, Outcome, OutcomeResult, Step, UpdateRecord,
};
use crate::agent::policy::{self, Authorization};
use crate::agent::storage::VerifyError;
use crate::agent::Slot;
use crate::tee::TeeError;

/// What [`Agent::install_or_rotate`] did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// An image installed and armed for a trial boot.
    Installed(Installed),
    /// The TA applied a trust-anchor update with this sequence number.
    Anchors {
        /// The update's sequence number.
        sequence_number: u64,
    },
}

/// The sequence number of `envelope` if it is a trust-anchor update, read without
/// authentication: only the route depends on it, the TA decides.
fn anchor_update(envelope: &[u8]) -> Option<u64> {
    let env = suit_shared::envelope::Envelope::decode(envelope).ok()?;
    let (manifest, _) = suit_shared::manifest::Manifest::decode_for_inspection(&env).ok()?;
    match &manifest.components[..] {
        [only] if suit_shared::anchors::is_anchor_component(only) => Some(manifest.sequence_number),
        _ => None,
    }
}

/// Bytes a GCM ciphertext is longer than its plaintext (the tag).
const AEAD_TAG_LEN: u64 = 16;

impl Agent {
    /// Installs the envelope at `source` (URL or path) into the inactive slot and arms a trial
    /// boot of it. Resumes an interrupted install of the same envelope.
    pub fn install(&mut self, source: &str) -> Result<Installed, AgentError> {
        self.install_into(source, None)
    }

    /// [`Self::install`], or, when the envelope at `source` is a trust-anchor update
    /// (docs/anchors.md), hands it to the TA's UPDATE_ANCHORS: nothing is written to a slot.
    pub fn install_or_rotate(&mut self, source: &str) -> Result<Applied, AgentError> {
        self.apply(source, None, true)
    }

    /// [`Self::install`] into `target` (default: the inactive slot); the factory installs the
    /// first image into a given slot this way.
    pub fn install_into(
        &mut self,
        source: &str,
        target: Option<Slot>,
    ) -> Result<Installed, AgentError> {
        match self.apply(source, target, false)? {
            Applied::Installed(installed) => Ok(installed),
            Applied::Anchors { .. } => Err(AgentError::Plan(
                "a trust-anchor update is not an image to install".into(),
            )),
        }
    }

    /// Installs `source` into `target`; with `rotate`, applies it instead when it is a
    /// trust-anchor update (without, LOAD_MANIFEST refuses such an envelope).
    fn apply(
        &mut self,
        source: &str,
        target: Option<Slot>,
        rotate: bool,
    ) -> Result<Applied, AgentError> {
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
        if rotate {
            if let Some(sequence_number) = anchor_update(&envelope) {
                let _ = std::fs::remove_file(&envelope_path);
                tracing::info!("asking the TA to apply the trust-anchor update");
                self.tee.update_anchors(&envelope)?;
                return Ok(Applied::Anchors { sequence_number });
            }
        }

        let facts = match self.device_facts(&envelope, target, source) {
            Ok(facts) => facts,
            Err(e) => {
                let _ = std::fs::remove_file(&envelope_path);
                return Err(e);
            }
        };
        tracing::info!("asking the TA to verify the envelope for slot {target}");
        let plan = match self.tee.load_manifest_with_facts(
            &envelope,
            slot_number,
            self.nonce.as_deref(),
            Some(facts),
        ) {
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
            .take()
            .filter(|u| u.manifest_digest == digest && u.target_slot == target);
        let update_dir = self.staging.update(&digest)?;
        std::fs::rename(&envelope_path, update_dir.envelope())
            .map_err(io_err("move", &envelope_path))?;
        let mut update = match resumed {
            Some(update) => {
                tracing::info!("resuming the interrupted install of this envelope");
                update
            }
            None => {
                // A different update was interrupted: its staging goes.
                self.staging.remove_all_except(Some(&digest))?;
                let components = plan
                    .items
                    .iter()
                    .map(|item| ComponentRecord {
                        index: item.index,
                        id: item.component_id.clone(),
                        size: item.size.unwrap_or(0),
                        state: ComponentState::Pending,
                        streamed: 0,
                    })
                    .collect();
                UpdateRecord::new(
                    digest.clone(),
                    plan.sequence_number,
                    source.to_string(),
                    target,
                    components,
                )
            }
        };
        self.save_update(&mut journal, &update)?;

        let result = self.carry_out(
            &plan,
            &envelope,
            target,
            (&mut journal, &mut update),
            &update_dir,
        );
        if result.is_err() {
            // The TA session drops everything uncommitted; the journal keeps the staged
            // payloads so that a retry resumes.
            let _ = self.tee.abort();
        }
        self.file_report();
        result.map(Applied::Installed)
    }

    fn carry_out(
        &mut self,
        plan: &Plan,
        envelope: &[u8],
        target: Slot,
        (journal, update): (&mut Journal, &mut UpdateRecord),
        update_dir: &super::staging::UpdateStaging,
    ) -> Result<Installed, AgentError> {
        // The TA's plan says what to fetch; the agent reads the envelope itself only for
        // integrated payloads (decoded once, and only if the plan has one).
        let integrated = plan
            .items
            .iter()
            .any(|item| matches!(item.source, PayloadSource::Integrated(_)));
        let env = integrated
            .then(|| suit_shared::envelope::Envelope::decode(envelope))
            .transpose()
            .map_err(|e| AgentError::Plan(e.to_string()))?;
        if super::streaming::streams(plan) {
            return self.install_streaming(plan, target, (journal, update));
        }
        // 1. Stage every payload, bounded by the plan.
        for (n, item) in plan.items.iter().enumerate() {
            let staged = update_dir.payload(item.index);
            if record_state(update, n).is_staged() && staged.exists() {
                continue;
            }
            let bound = fetch_bound(item)?;
            match &item.source {
                PayloadSource::Uri(uri) => {
                    tracing::info!("downloading component {} from {uri}", item.component_id);
                    let mut progress = (self.progress)();
                    self.fetcher
                        .fetch(&Source::parse(uri)?, &staged, bound, progress.as_mut())?;
                }
                PayloadSource::Integrated(key) => {
                    let data = env
                        .as_ref()
                        .and_then(|e| e.integrated(key))
                        .ok_or_else(|| {
                            AgentError::Plan(format!(
                                "the envelope does not carry the integrated payload {key}"
                            ))
                        })?;
                    write_synced(&staged, data)?;
                }
                PayloadSource::Content(bytes) => write_synced(&staged, bytes)?,
            }
            set_state(update, n, ComponentState::Staged);
            if update.all_components(ComponentState::is_staged) {
                update.advance(Step::Staged);
            }
            self.save_update(journal, update)?;
        }

        // 2. Approve: nothing is written before every token exists.
        let mut approvals = Vec::new();
        for (n, item) in plan.items.iter().enumerate() {
            let staged = update_dir.payload(item.index);
            let mut file = File::open(&staged).map_err(io_err("open", &staged))?;
            tracing::info!("streaming component {} through the TA", item.component_id);
            let approval = match self.tee.approve(item.index, &mut file) {
                Ok(approval) => approval,
                Err(e) => return Err(self.refused(e.into(), (journal, update), n, &staged)),
            };
            set_state(update, n, ComponentState::Approved);
            approvals.push(approval);
        }
        update.advance(Step::Approved);
        self.save_update(journal, update)?;

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
                item.component_id,
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
                                component: item.component_id.to_string(),
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
                return Err(self.refused(e, (journal, update), n, &staged));
            }
            set_state(update, n, ComponentState::Written);
            self.save_update(journal, update)?;
        }
        update.advance(Step::Written);
        self.save_update(journal, update)?;

        self.commit_and_arm(plan, target, (journal, update), &approvals)
    }

    /// COMMIT with every approval's token, then arm the trial boot of `target`.
    pub(super) fn commit_and_arm(
        &mut self,
        plan: &Plan,
        target: Slot,
        (journal, update): (&mut Journal, &mut UpdateRecord),
        approvals: &[suit_shared::abi::Approval],
    ) -> Result<Installed, AgentError> {
        // 4. Commit, then arm the trial boot.
        let tokens: Vec<Vec<u8>> = approvals.iter().map(|a| a.token.clone()).collect();
        self.tee.commit(&tokens)?;
        update.advance(Step::Committed);
        self.save_update(journal, update)?;
        self.boot.mark_trial(target)?;
        update.advance(Step::TrialArmed);
        self.save_update(journal, update)?;
        Ok(Installed {
            sequence_number: plan.sequence_number,
            slot: target,
            components: plan
                .items
                .iter()
                .zip(approvals)
                .map(|(item, a)| (item.component_id.clone(), a.size))
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
        (journal, update): (&mut Journal, &mut UpdateRecord),
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
        set_state(update, n, ComponentState::Pending);
        if let Err(e) = self.save_update(journal, update) {
            tracing::warn!("cannot record the dropped payload in the journal: {e}");
        }
        error
    }
    /// Saves `journal` with `update` as its update in progress.
    pub(super) fn save_update(
        &self,
        journal: &mut Journal,
        update: &UpdateRecord,
    ) -> Result<(), AgentError> {
        journal.update = Some(update.clone());
        Ok(self.journal.save(journal)?)
    }

    /// The device's facts for LOAD_MANIFEST (see [`crate::agent::policy`]).
    fn device_facts(
        &self,
        envelope: &[u8],
        slot: Slot,
        source: &str,
    ) -> Result<DeviceFacts, AgentError> {
        let update = policy::Update {
            envelope,
            slot,
            source,
        };
        let facts = policy::facts(&self.config.policy, update)?;
        if let Authorization::Declined(reason) = &facts.authorization {
            tracing::warn!("the authorization hook declined the update: {reason}");
        }
        Ok(facts.device)
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
        let facts = self.device_facts(&envelope, target, source)?;
        let plan = match self.tee.load_manifest_with_facts(
            &envelope,
            self.slot_number(target)?,
            None,
            Some(facts),
        ) {
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
}

/// The most bytes a component's download may have: the plan's fetched size, else its
/// plaintext size (plus the AEAD tag when encrypted). Without either the agent refuses to
/// download: an unbounded payload could fill the disk.
pub(super) fn fetch_bound(item: &PlanItem) -> Result<u64, AgentError> {
    if let Some(size) = item.fetch_size {
        return Ok(size);
    }
    match (item.size, item.encryption_info.is_some()) {
        (Some(size), false) => Ok(size),
        (Some(size), true) => Ok(size + AEAD_TAG_LEN),
        (None, _) => Err(AgentError::Plan(format!(
            "the manifest gives no image-size for component {}; the agent does not download unbounded payloads",
            item.component_id
        ))),
    }
}

/// The recorded state of plan item `n`; a record that lists fewer components than the plan
/// (edited by hand) has the rest still to do.
fn record_state(update: &UpdateRecord, n: usize) -> ComponentState {
    update
        .components
        .get(n)
        .map_or(ComponentState::Pending, |c| c.state)
}

pub(super) fn set_state(update: &mut UpdateRecord, n: usize, state: ComponentState) {
    if let Some(c) = update.components.get_mut(n) {
        c.state = state;
    }
    update.touch();
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
