//! The daemon driven by a hawkBit DDI fleet server (`[ddi]`, see [`crate::agent::ddi`]).
//!
//! Each poll: answer a cancelAction or carry out a deploymentBase, then send the device's
//! attributes (configData) when the server asks or they changed. A deployment is the envelope
//! artifact (`*.suit`); it goes through [`Agent::install`] like any other source, so the TA
//! decides as always. Its other artifacts serve the payloads whose manifest URIs end in their
//! names (with the server's credentials; the TA checks them against the manifest as ever).
//! Feedback: `proceeding` with progress while downloading and installing; then
//! * the TA refuses (or the plan cannot be carried out): `closed`/`failure` once, with the
//!   reason and the signed SUIT report; the action is never tried again;
//! * the install is committed: `proceeding` (2 of 3), reboot; after the trial boot the next
//!   poll finds the action again and closes it with `success` (confirmed) or `failure` (rolled
//!   back), with the report of that outcome;
//! * a transient failure (network, server, storage): no verdict; the next poll retries.
//!
//! Failed polls wait with exponential backoff (`[retry]` initial-backoff doubling up to
//! max-backoff); otherwise the server's `config.polling.sleep` (default `poll-interval`).
//! What the device did with each action is kept in `<state-dir>/ddi-action.json`, so that a
//! reboot (or a lost feedback) neither repeats nor forgets a verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use suit_shared::abi::{InstallState, LastOutcome};

use super::{Agent, AgentError};
use crate::agent::config::DdiConfig;
use crate::agent::ddi::{DdiClient, DdiError, DeploymentBase, Execution, Feedback, Finished, Link};

/// File in the state directory recording the device's last action.
const STATE_FILE: &str = "ddi-action.json";

/// Longest detail line sent in a feedback (hawkBit stores messages of up to 512 characters).
const DETAIL_LEN: usize = 400;

/// What the device did with a server's action.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ActionRecord {
    action: String,
    /// [`DeploymentBase::fingerprint`]: the same action id may name another deployment.
    deployment: String,
    phase: Phase,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", tag = "phase")]
enum Phase {
    /// Committed; the trial boot decides.
    Installed { sequence_number: u64 },
    /// Decided: the verdict, and whether the server has it.
    Closed { feedback: Feedback, delivered: bool },
}

impl Agent {
    /// The daemon against a DDI server: polls for ever, backing off on errors.
    pub(super) fn fleet_daemon(&mut self, config: &DdiConfig) -> Result<(), AgentError> {
        let client = DdiClient::new(config).map_err(|e| AgentError::Config(e.to_string()))?;
        tracing::info!("polling the fleet server {}", client.base());
        let mut failures = 0;
        let mut sent_identity = None;
        loop {
            let wait = match self.fleet_poll(&client, config, &mut sent_identity) {
                Ok(wait) => {
                    failures = 0;
                    wait
                }
                Err(e) => {
                    failures += 1;
                    let wait = self.config.retry.backoff(failures);
                    tracing::warn!("{e}; next poll in {}", humantime::format_duration(wait));
                    wait
                }
            };
            std::thread::sleep(wait);
        }
    }

    /// One poll; returns the time until the next. The attributes go to the server when it
    /// asks and whenever they changed since `sent_identity` (after a confirmed update: the
    /// server learns the new version) — after the deployment step, so that the server still
    /// offers the deployment whose verdict is due.
    fn fleet_poll(
        &mut self,
        client: &DdiClient,
        config: &DdiConfig,
        sent_identity: &mut Option<BTreeMap<String, String>>,
    ) -> Result<Duration, AgentError> {
        let base = client.poll(&self.fetcher)?;
        let wait = base.sleep().unwrap_or(self.config.poll_interval);
        let mut record = self.load_action();
        if let Some(link) = &base.links.cancel_action {
            self.fleet_cancel(client, link, &mut record)?;
        } else if let Some(link) = &base.links.deployment_base {
            let deployment = client.deployment(&self.fetcher, link)?;
            self.fleet_deploy(client, &deployment, &mut record)?;
        }
        let identity = self.fleet_identity(config)?;
        if base.links.config_data.is_some() || sent_identity.as_ref() != Some(&identity) {
            client.put_config_data(&self.fetcher, &identity)?;
            tracing::info!("sent the device's attributes to the fleet server");
            *sent_identity = Some(identity);
        }
        Ok(wait)
    }

    /// The attributes of configData: the board, the TA's identity and the running version.
    fn fleet_identity(
        &mut self,
        config: &DdiConfig,
    ) -> Result<BTreeMap<String, String>, AgentError> {
        let info = self.tee.get_info()?;
        let sequence = info
            .floors
            .iter()
            .map(|(_, floor)| *floor)
            .max()
            .unwrap_or(0);
        Ok(BTreeMap::from([
            ("hw_boardname".to_string(), config.board_name.clone()),
            ("hw_revision".to_string(), config.board_revision.clone()),
            ("sw_version".to_string(), sequence.to_string()),
            ("suit_vendor_id".to_string(), info.vendor_id.to_string()),
            ("suit_class_id".to_string(), info.class_id.to_string()),
            ("suit_sequence_number".to_string(), sequence.to_string()),
        ]))
    }

    fn fleet_cancel(
        &mut self,
        client: &DdiClient,
        link: &Link,
        record: &mut Option<ActionRecord>,
    ) -> Result<(), AgentError> {
        let cancel = client.cancel_action(&self.fetcher, link)?;
        let stop = &cancel.cancel_action.stop_id;
        let committed = record
            .as_ref()
            .is_some_and(|r| r.action == *stop && matches!(r.phase, Phase::Installed { .. }));
        let feedback = if committed {
            tracing::info!("refusing to cancel action {stop}: its install is committed");
            Feedback::new(
                Execution::Rejected,
                Finished::None,
                None,
                vec!["the update is committed and its trial boot decides; not cancelled".into()],
            )
        } else {
            tracing::info!("action {stop} cancelled by the fleet server");
            let closed = Feedback::new(
                Execution::Closed,
                Finished::Failure,
                None,
                vec!["cancelled by the server before installation".into()],
            );
            *record = Some(ActionRecord {
                action: stop.clone(),
                deployment: String::new(),
                phase: Phase::Closed {
                    feedback: closed,
                    delivered: true,
                },
            });
            self.save_action(record)?;
            Feedback::new(
                Execution::Closed,
                Finished::Success,
                None,
                vec!["cancelled: nothing was installed".into()],
            )
        };
        client.cancel_feedback(&self.fetcher, &cancel.id, &feedback)?;
        Ok(())
    }

    fn fleet_deploy(
        &mut self,
        client: &DdiClient,
        deployment: &DeploymentBase,
        record: &mut Option<ActionRecord>,
    ) -> Result<(), AgentError> {
        let action = deployment.id.clone();
        let fingerprint = deployment.fingerprint();
        // A cancelled action is recorded by its id alone (the cancellation names no more).
        match record
            .as_ref()
            .filter(|r| {
                r.action == action && (r.deployment == fingerprint || r.deployment.is_empty())
            })
            .map(|r| r.phase.clone())
        {
            Some(Phase::Closed {
                delivered: true, ..
            }) => {
                tracing::info!("action {action} was decided and reported before: not tried again");
                return Ok(());
            }
            Some(Phase::Closed { feedback, .. }) => {
                return self.fleet_close(client, (&action, &fingerprint), feedback, record);
            }
            Some(Phase::Installed { sequence_number }) => {
                return self.fleet_after_trial(
                    client,
                    (&action, &fingerprint),
                    sequence_number,
                    record,
                );
            }
            None => {}
        }
        let reports = report_names(&self.config.state_dir);
        let artifact = match deployment.envelope() {
            Ok(artifact) => artifact,
            Err(reason) => {
                let feedback =
                    Feedback::new(Execution::Closed, Finished::Failure, None, vec![reason]);
                return self.fleet_close(client, (&action, &fingerprint), feedback, record);
            }
        };
        tracing::info!("action {action}: downloading {}", artifact.filename);
        let progress = |cnt, detail: String| {
            Feedback::new(
                Execution::Proceeding,
                Finished::None,
                Some((cnt, 3)),
                vec![detail],
            )
        };
        client.deployment_feedback(
            &self.fetcher,
            &action,
            &progress(0, format!("downloading {}", artifact.filename)),
        )?;
        let info = self.tee.get_info()?;
        let envelope = self.config.staging_dir.join("ddi-envelope.suit");
        client.download(
            &self.fetcher,
            artifact,
            &envelope,
            u64::from(info.max_envelope),
        )?;
        client.deployment_feedback(
            &self.fetcher,
            &action,
            &progress(1, "installing through the TA".into()),
        )?;
        let source = envelope.display().to_string();
        self.fetcher
            .set_artifacts(client.payload_artifacts(deployment)?);
        let result = self.install(&source);
        self.fetcher.set_artifacts(Vec::new());
        let _ = std::fs::remove_file(&envelope);
        match result {
            Ok(installed) => {
                *record = Some(ActionRecord {
                    action: action.clone(),
                    deployment: fingerprint.clone(),
                    phase: Phase::Installed {
                        sequence_number: installed.sequence_number,
                    },
                });
                self.save_action(record)?;
                let detail = format!(
                    "sequence {} committed into slot {}; rebooting for its trial boot",
                    installed.sequence_number, installed.slot
                );
                // The reboot below may end this process: the server hears of it now, and
                // of the outcome after the trial boot.
                if let Err(e) =
                    client.deployment_feedback(&self.fetcher, &action, &progress(2, detail))
                {
                    tracing::warn!("{e}");
                }
                tracing::info!(
                    "installed sequence {}; reboot due",
                    installed.sequence_number
                );
                self.reboot()
            }
            Err(e) if is_transient(&e) => {
                tracing::warn!("action {action}: {e}; retried at the next poll");
                Err(e)
            }
            Err(e) => {
                tracing::warn!("action {action} failed: {e}");
                let mut details = vec![format!("{e} [{}]", e.category())];
                details.extend(report_details(&self.config.state_dir, &reports));
                let feedback = Feedback::new(Execution::Closed, Finished::Failure, None, details);
                self.fleet_close(client, (&action, &fingerprint), feedback, record)
            }
        }
    }

    /// After an install of `action` (id, deployment fingerprint) was committed: closes it
    /// once the trial boot decided.
    fn fleet_after_trial(
        &mut self,
        client: &DdiClient,
        action: (&str, &str),
        sequence_number: u64,
        record: &mut Option<ActionRecord>,
    ) -> Result<(), AgentError> {
        let info = self.tee.get_info()?;
        if let InstallState::Trial(_) = info.install {
            tracing::info!("action {}: waiting for the trial boot", action.0);
            return Ok(());
        }
        let floor = info.floors.iter().map(|(_, f)| *f).max().unwrap_or(0);
        let confirmed = info.last_outcome == LastOutcome::Confirmed && floor >= sequence_number;
        let (finished, line) = if confirmed {
            (
                Finished::Success,
                format!("sequence {sequence_number} confirmed after its trial boot"),
            )
        } else {
            (
                Finished::Failure,
                format!("sequence {sequence_number} was rolled back after its trial boot"),
            )
        };
        let mut details = vec![line];
        details.extend(report_details(&self.config.state_dir, &BTreeSet::new()));
        let feedback = Feedback::new(Execution::Closed, finished, None, details);
        self.fleet_close(client, action, feedback, record)
    }

    /// Records the verdict on `action` (id, deployment fingerprint), then delivers it.
    fn fleet_close(
        &mut self,
        client: &DdiClient,
        (action, deployment): (&str, &str),
        feedback: Feedback,
        record: &mut Option<ActionRecord>,
    ) -> Result<(), AgentError> {
        *record = Some(ActionRecord {
            action: action.to_string(),
            deployment: deployment.to_string(),
            phase: Phase::Closed {
                feedback: feedback.clone(),
                delivered: false,
            },
        });
        self.save_action(record)?;
        client.deployment_feedback(&self.fetcher, action, &feedback)?;
        *record = Some(ActionRecord {
            action: action.to_string(),
            deployment: deployment.to_string(),
            phase: Phase::Closed {
                feedback,
                delivered: true,
            },
        });
        self.save_action(record)
    }

    fn load_action(&self) -> Option<ActionRecord> {
        let bytes = std::fs::read(self.config.state_dir.join(STATE_FILE)).ok()?;
        serde_json::from_slice(&bytes)
            .map_err(|e| tracing::warn!("ignoring {STATE_FILE}: {e}"))
            .ok()
    }

    fn save_action(&self, record: &Option<ActionRecord>) -> Result<(), AgentError> {
        let path = self.config.state_dir.join(STATE_FILE);
        let json = serde_json::to_vec(record).map_err(|e| AgentError::Plan(e.to_string()))?;
        super::atomic::replace_file(&path, &json).map_err(super::io_err("write", &path))
    }
}

impl From<DdiError> for AgentError {
    fn from(error: DdiError) -> AgentError {
        match error {
            DdiError::Config(message) => AgentError::Config(message),
            other => AgentError::Fleet(other),
        }
    }
}

/// Whether an install failure may pass on a later try (network, server, storage), rather
/// than being the TA's or the plan's verdict.
fn is_transient(error: &AgentError) -> bool {
    matches!(
        error,
        AgentError::Fetch(_)
            | AgentError::Io { .. }
            | AgentError::Journal(_)
            | AgentError::Staging(_)
            | AgentError::Fleet(_)
            | AgentError::Tee(crate::tee::TeeError::Tee { .. })
    )
}

/// The SUIT reports kept in `<state-dir>/reports`.
fn report_names(state_dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(state_dir.join("reports"))
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "suit-report"))
                .collect()
        })
        .unwrap_or_default()
}

/// The newest SUIT report not in `before`, as feedback lines: `suit-report i/n: HEX` pieces
/// of the COSE_Sign1 (a verifier joins them and checks the device's signature). Newest by
/// modification time: report names carry whole seconds and a process id, so two reports of
/// one second (an install, then its boot-check) do not sort by name.
fn report_details(state_dir: &Path, before: &BTreeSet<PathBuf>) -> Vec<String> {
    let Some(newest) = report_names(state_dir)
        .into_iter()
        .filter(|p| !before.contains(p))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
    else {
        return Vec::new();
    };
    let Ok(bytes) = std::fs::read(&newest) else {
        return Vec::new();
    };
    let hex = base16ct::lower::encode_string(&bytes);
    let pieces: Vec<&str> = hex
        .as_bytes()
        .chunks(DETAIL_LEN)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    let n = pieces.len();
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| format!("suit-report {}/{n}: {piece}", i + 1))
        .collect()
}
