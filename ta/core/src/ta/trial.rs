//! The trial boot's end: CONFIRM_UPDATE streams the running slot through the TA, CONFIRM
//! checks it against the pending install and raises the floors; ROLLBACK drops the pending
//! install and withdraws its approval to boot.

use alloc::format;

use suit_shared::abi::{CommandId, Floors, InstallState, LastOutcome, PendingInstall};
use suit_shared::boot::BootStatus;
use suit_shared::Error;

use super::session::{Session, SessionId};
use super::transport::Data;
use super::{fits, offset_error, Core};
use crate::error::{Result, TaError};
use crate::platform::{Clock, Rng, Storage};
use crate::stream::PayloadStream;

impl<S: Storage, R: Rng, C: Clock> Core<S, R, C> {
    /// The install a CONFIRM in session `s` would confirm.
    fn pending_for_confirm(&mut self, s: &Session, command: CommandId) -> Result<PendingInstall> {
        if s.committed {
            return Err(TaError::order(
                command,
                "this session committed the install; confirm from the trial boot (a new session)",
            ));
        }
        match &self.state()?.install {
            InstallState::Trial(p) => Ok(p.clone()),
            InstallState::Idle => Err(TaError::order(
                command,
                "no install is pending (nothing to confirm)",
            )),
        }
    }

    pub(super) fn confirm_update(
        &mut self,
        s: &mut Session,
        component: u32,
        offset: u64,
        chunk: &Data<'_>,
    ) -> Result<()> {
        const CMD: CommandId = CommandId::ConfirmUpdate;
        let pending = self.pending_for_confirm(s, CMD)?;
        let index = component as usize;
        let Some(record) = pending.components.get(index) else {
            return Err(TaError::order(
                CMD,
                format!("the pending install has no component {component}"),
            ));
        };
        if s.confirm.len() != pending.components.len() {
            s.confirm = alloc::vec![None; pending.components.len()];
        }
        let mut stream = match s.confirming.take() {
            Some((i, stream)) if i == index && offset != 0 && offset == stream.received() => stream,
            Some((i, stream)) if offset != 0 => {
                let received = if i == index { stream.received() } else { 0 };
                s.confirming = Some((i, stream));
                return Err(offset_error(CMD, component, offset, received));
            }
            None if offset != 0 => return Err(offset_error(CMD, component, offset, 0)),
            previous => {
                // Offset 0: the component starts; the one streamed before it is complete.
                if let Some((i, done)) = previous.filter(|(i, _)| *i != index) {
                    let (computed, _) = done.finish(None, |_| Ok(()))?;
                    s.confirm[i] = Some(computed);
                }
                PayloadStream::new(index, record.digest.alg(), Some(record.size), None)
            }
        };
        s.confirm[index] = None;
        chunk.pieces(0..chunk.len(), |piece| Ok(stream.update(piece, None)?))?;
        s.confirming = Some((index, stream));
        Ok(())
    }

    pub(super) fn confirm(&mut self, s: &mut Session, capacity: usize) -> Result<Floors> {
        const CMD: CommandId = CommandId::Confirm;
        let pending = self.pending_for_confirm(s, CMD)?;
        if s.confirm.len() != pending.components.len() {
            s.confirm = alloc::vec![None; pending.components.len()];
        }
        if let Some((i, stream)) = s.confirming.take() {
            let (computed, _) = stream.finish(None, |_| Ok(()))?;
            if let Some(slot) = s.confirm.get_mut(i) {
                *slot = Some(computed);
            }
        }
        let verdict = pending
            .components
            .iter()
            .zip(&s.confirm)
            .enumerate()
            .find_map(|(i, (c, actual))| match actual {
                None => Some(TaError::order(
                    CMD,
                    format!("component {i} of the running slot was not streamed (CONFIRM_UPDATE)"),
                )),
                Some(actual) if actual.size != c.size => Some(
                    Error::ImageSizeMismatch {
                        component: i,
                        expected: c.size,
                        actual: actual.size,
                    }
                    .into(),
                ),
                Some(actual) if actual.digest != c.digest => {
                    Some(Error::ImageDigestMismatch { component: i }.into())
                }
                Some(_) => None,
            });
        s.confirm.clear();
        if let Some(e) = verdict {
            return Err(e);
        }
        let mut floors = Floors::new();
        self.change_state(|st| {
            for c in &pending.components {
                st.raise_floor(&c.component_id, pending.sequence_number);
                floors.push((c.component_id.clone(), st.floor(&c.component_id)));
            }
            st.install = InstallState::Idle;
            st.last_outcome = LastOutcome::Confirmed;
            if let Some(mut record) = st.boot_record(pending.slot).cloned() {
                if record.sequence_number == pending.sequence_number {
                    record.status = BootStatus::Good;
                    st.set_boot_record(record);
                }
            }
            fits(&floors, capacity)
        })?;
        Ok(floors)
    }

    pub(super) fn rollback(&mut self, id: SessionId, s: &mut Session) -> Result<()> {
        if s.update.as_ref().is_some_and(|u| !u.committed) {
            s.update = None;
            self.release_update(id);
        }
        s.clear_confirm();
        // Idempotent: with nothing pending there is nothing to drop.
        if let InstallState::Trial(_) = self.state()?.install {
            self.change_state(|st| {
                if let InstallState::Trial(p) = &st.install {
                    // The trial's approval to boot is withdrawn with it.
                    let slot = p.slot;
                    st.boot
                        .retain(|r| r.slot != slot || r.status != BootStatus::Trial);
                }
                st.install = InstallState::Idle;
                st.last_outcome = LastOutcome::RolledBack;
                Ok(())
            })?;
        }
        Ok(())
    }
}
