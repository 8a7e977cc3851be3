//! COMMIT: every plan item's token comes back, the manifest runs a second time over the
//! digests the TA computed (it must pass and take the planned path), and the pending install
//! with its boot record is stored in one atomic state replacement.

use alloc::format;
use alloc::vec::Vec;

use suit_shared::abi::{CommandId, InstallState, InstalledComponent, PendingInstall};
use suit_shared::boot::{BootComponent, BootRecord, BootStatus};
use suit_shared::Error;

use super::approval::claims;
use super::session::{ItemState, Session, SessionId};
use super::{fits, Core, SECTIONS};
use crate::error::{Result, TaError};
use crate::plan::{self, Computed};
use crate::platform::{Clock, Rng, Storage};

impl<S: Storage, R: Rng, C: Clock> Core<S, R, C> {
    pub(super) fn commit(
        &mut self,
        id: SessionId,
        s: &mut Session,
        tokens: &[Vec<u8>],
        capacity: usize,
    ) -> Result<PendingInstall> {
        const CMD: CommandId = CommandId::Commit;
        let nonce = s.nonce;
        let update = s.open_update(CMD)?;
        if tokens.len() != update.items.len() {
            return Err(TaError::Token(format!(
                "COMMIT needs one token per plan item ({}), got {}",
                update.items.len(),
                tokens.len()
            )));
        }
        let mut expected = Vec::new();
        // What the TA computed, per payload of the plan.
        let payloads = update
            .items
            .iter()
            .flat_map(|i| [Some(i.payload), i.fetched_payload])
            .flatten()
            .max()
            .map_or(0, |p| p + 1);
        let mut computed: Vec<Option<Computed>> = alloc::vec![None; payloads];
        for item in &update.items {
            let index = item.plan.index;
            let done = match (&item.state, &item.plan.encryption_info) {
                // Installed: decrypted for install, or streamed in one pass (STREAM_FINAL).
                (ItemState::Installed(c), _) | (ItemState::Approved(c), None) => Some(c),
                _ => None,
            };
            let Some(c) = done else {
                let what = if item.plan.encryption_info.is_some() {
                    "approved and decrypted for install (DECRYPT_FOR_INSTALL to the last chunk)"
                } else {
                    "approved (PAYLOAD_FINAL)"
                };
                return Err(TaError::order(
                    CMD,
                    format!("component {index} is not {what}"),
                ));
            };
            expected.push(claims(update, &item.plan, c, nonce));
            if let Some(slot) = computed.get_mut(item.payload) {
                *slot = Some(c.clone());
            }
            if let Some(slot) = item.fetched_payload.and_then(|p| computed.get_mut(p)) {
                *slot = item.fetched.clone();
            }
        }
        let pending = PendingInstall {
            slot: update.slot,
            sequence_number: update.sequence_number,
            manifest_digest: update.manifest_digest.clone(),
            components: update
                .items
                .iter()
                .zip(&expected)
                .map(|(item, claims)| InstalledComponent {
                    component_id: item.plan.component_id.clone(),
                    digest: claims.image_digest.clone(),
                    size: claims.image_size,
                })
                .collect(),
        };
        for ((token, claims), item) in tokens.iter().zip(&expected).zip(&mut update.items) {
            self.check_token(&mut item.verified_token, token, claims)?;
        }

        // Second run over the digests the TA computed: must pass and take the same path.
        let now = self.clock.now();
        let (state, config) = self.loaded()?;
        if let InstallState::Trial(_) = state.install {
            return Err(TaError::order(CMD, "another install is pending"));
        }
        for c in &pending.components {
            let floor = state.floor(&c.component_id);
            if pending.sequence_number < floor {
                return Err(Error::Rollback {
                    sequence: pending.sequence_number,
                    floor,
                }
                .into());
            }
        }
        // The envelope authenticated at LOAD_MANIFEST and has been in TA memory since: decoded
        // again for the second run, its signature is not verified again.
        let authentic = update.envelope.open()?;
        let identity = Self::identity(state, config);
        let again = plan::verify(
            &authentic,
            &SECTIONS,
            &identity,
            update.slot,
            now,
            update.facts,
            &computed,
        )?;
        if again != update.trace {
            return Err(TaError::Diverged);
        }
        fits(&pending, capacity)?;
        let boot = BootRecord {
            slot: update.slot,
            sequence_number: pending.sequence_number,
            status: BootStatus::Trial,
            components: update
                .items
                .iter()
                .filter_map(|item| {
                    item.verity.clone().map(|verity| BootComponent {
                        component_id: item.plan.component_id.clone(),
                        verity,
                    })
                })
                .collect(),
        };
        let record = pending.clone();
        self.change_state(|st| {
            st.install = InstallState::Trial(record);
            st.set_boot_record(boot);
            Ok(())
        })?;
        update.committed = true;
        s.committed = true;
        self.release_update(id);
        Ok(pending)
    }
}
