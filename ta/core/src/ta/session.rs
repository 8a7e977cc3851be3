//! Per-session memory: the update in progress with one state per plan item, the running
//! slot's streams for CONFIRM, and what REPORT says about the session's last attempt. Nothing
//! here is persistent; closing the session drops it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use suit_shared::abi::{CommandId, PendingInstall, PlanItem, Reply};
use suit_shared::digest::DigestValue;
use suit_shared::manifest::AuthenticEnvelope;
use suit_shared::report::{Reason, Report, ReportResult, INCOMPLETE, TRIAL_FAILED};
use suit_shared::token::{Claims, NONCE_LEN};
use suit_shared::verity::VerityParams;

use crate::error::{Result, TaError};
use crate::plan::{Computed, Step};
use crate::stream::PayloadStream;

/// A session handle.
pub type SessionId = u32;

/// Where one plan item is in its approval.
pub(super) enum ItemState {
    Pending,
    Streaming(PayloadStream),
    /// Streaming in one pass (STREAM_UPDATE); STREAM_FINAL makes it Installed.
    OnePass(alloc::boxed::Box<super::streaming::OnePass>),
    Approved(Computed),
    Installing(Computed, PayloadStream),
    Installed(Computed),
}

/// One item of the loaded plan and what the TA computed for it.
pub(super) struct Item {
    pub plan: PlanItem,
    /// The staging component the bytes pass through (source of a copy), if any.
    pub staging: Option<usize>,
    /// The payload of the plan the item installs.
    pub payload: usize,
    /// The payload of the plan its bytes arrive as, when they are decrypted on the way.
    pub fetched_payload: Option<usize>,
    /// Digest and size of the bytes as streamed (before decryption), once approved.
    pub fetched: Option<Computed>,
    /// The dm-verity tree of the approved plaintext, once approved (verified boot).
    pub verity: Option<VerityParams>,
    pub state: ItemState,
    /// The last token that verified for the item and the claims it was checked against:
    /// the agent hands the same token back with every DECRYPT_FOR_INSTALL chunk and at
    /// COMMIT, and it is verified once ([`super::Core::check_token`]).
    pub verified_token: Option<(Vec<u8>, Claims)>,
}

impl Item {
    /// What the TA approved for the item, once it did.
    pub fn approved(&self) -> Option<&Computed> {
        match &self.state {
            ItemState::Approved(c) | ItemState::Installing(c, _) | ItemState::Installed(c) => {
                Some(c)
            }
            ItemState::Pending | ItemState::Streaming(_) | ItemState::OnePass(_) => None,
        }
    }
}

/// The update a session loaded with LOAD_MANIFEST.
pub(super) struct Update {
    /// The envelope LOAD_MANIFEST authenticated, for COMMIT's second run.
    pub envelope: AuthenticEnvelope,
    pub manifest_digest: DigestValue,
    pub sequence_number: u64,
    pub slot: u64,
    pub items: Vec<Item>,
    pub trace: Vec<Step>,
    pub committed: bool,
    /// The verifier's nonce given to LOAD_MANIFEST, carried into every token.
    pub verifier_nonce: Option<Vec<u8>>,
    /// The device's facts given to LOAD_MANIFEST; COMMIT's run answers from them too.
    pub facts: suit_shared::abi::DeviceFacts,
}

impl Update {
    /// The position of plan item `component` (its manifest index) in [`Update::items`].
    pub fn position(&self, command: CommandId, component: u32) -> Result<usize> {
        self.items
            .iter()
            .position(|i| i.plan.index == component)
            .ok_or_else(|| {
                TaError::order(
                    command,
                    format!("component {component} is not in the install plan"),
                )
            })
    }
}

/// One TA session.
pub(super) struct Session {
    /// Whether the client may use the commands that change state.
    pub trusted: bool,
    /// This session committed an install: it may not CONFIRM it, even after ABORT (the
    /// confirmation belongs to the trial boot, in a new session).
    pub committed: bool,
    /// The reference of the envelope the current LOAD_MANIFEST authenticated, if it did.
    pub authenticated: Option<(String, DigestValue)>,
    pub nonce: [u8; NONCE_LEN],
    pub update: Option<Update>,
    /// Per pending component, what CONFIRM_UPDATE computed over the running slot.
    pub confirm: Vec<Option<Computed>>,
    /// The pending component being streamed by CONFIRM_UPDATE.
    pub confirming: Option<(usize, PayloadStream)>,
    /// What REPORT reports: this session's last update attempt.
    pub attempt: Option<Attempt>,
}

impl Session {
    /// A new session; its nonce is filled in by the caller.
    pub fn new(trusted: bool) -> Self {
        Session {
            trusted,
            committed: false,
            authenticated: None,
            nonce: [0; NONCE_LEN],
            update: None,
            confirm: Vec::new(),
            confirming: None,
            attempt: None,
        }
    }

    /// The loaded, uncommitted update, or why `command` cannot run.
    pub fn open_update(&mut self, command: CommandId) -> Result<&mut Update> {
        match self.update.as_mut() {
            None => Err(TaError::order(
                command,
                "no manifest is loaded (LOAD_MANIFEST first)",
            )),
            Some(u) if u.committed => Err(TaError::order(
                command,
                "this session's update is already committed",
            )),
            Some(u) => Ok(u),
        }
    }

    /// Forgets the running slot's streams.
    pub fn clear_confirm(&mut self) {
        self.confirm.clear();
        self.confirming = None;
    }

    /// Records what REPORT will say about this session's attempt after `command` ended with
    /// `result`; `pending` is the install that was pending before it (CONFIRM, ROLLBACK).
    pub fn note_attempt(
        &mut self,
        command: CommandId,
        data: &[u8],
        pending: Option<PendingInstall>,
        item: Option<u32>,
        result: &Result<Reply>,
    ) {
        match (command, result) {
            (CommandId::LoadManifest, _) => {
                // What an envelope says about itself is only reported once it authenticated.
                let (manifest_uri, manifest_digest) = self
                    .authenticated
                    .take()
                    .unwrap_or_else(|| (String::new(), Report::digest_of_input(data)));
                let result = match result {
                    // Success only once committed.
                    Ok(_) => failure_code(INCOMPLETE),
                    Err(e) => failure(e, item),
                };
                self.attempt = Some(Attempt {
                    manifest_uri,
                    manifest_digest,
                    result,
                });
            }
            (CommandId::Commit, Ok(_)) => {
                // Success only once the trial boot confirms it.
                if let Some(a) = self.attempt.as_mut() {
                    a.result = ReportResult::Pending;
                }
            }
            (
                CommandId::PayloadUpdate
                | CommandId::PayloadFinal
                | CommandId::DecryptForInstall
                | CommandId::Commit,
                Err(e),
            ) => {
                if let Some(a) = self.attempt.as_mut() {
                    a.result = failure(e, item);
                }
            }
            (CommandId::Confirm | CommandId::Rollback, _) => {
                let result = match (command, result) {
                    (CommandId::Confirm, Ok(_)) => ReportResult::Success,
                    (CommandId::Confirm, Err(e)) => failure(e, item),
                    (_, Ok(_)) => failure_code(TRIAL_FAILED),
                    // A failed ROLLBACK says nothing new about the attempt.
                    (_, Err(_)) => return,
                };
                if let Some(p) = pending {
                    self.attempt = Some(Attempt {
                        manifest_uri: String::new(),
                        manifest_digest: p.manifest_digest,
                        result,
                    });
                }
            }
            _ => {}
        }
    }
}

/// One update attempt as the TA saw it, for REPORT.
pub(super) struct Attempt {
    pub manifest_uri: String,
    pub manifest_digest: DigestValue,
    pub result: ReportResult,
}

fn failure_code(code: i64) -> ReportResult {
    ReportResult::Failure {
        code,
        reason: Reason::OperationFailed,
        section: 0,
        component: 0,
    }
}

/// The report result of a rejection: where the manifest's processing failed, or else the
/// plan item a payload command was about (section 0: not while running a sequence).
fn failure(e: &TaError, item: Option<u32>) -> ReportResult {
    let category = e.category();
    let (section, component) = match e {
        TaError::Processing { at: Some(at), .. } => {
            (at.sequence.key(), at.component.map_or(0, |c| c as u64))
        }
        _ => (0, item.map_or(0, u64::from)),
    };
    ReportResult::Failure {
        code: category.code().into(),
        reason: Reason::of(category),
        section,
        component,
    }
}
