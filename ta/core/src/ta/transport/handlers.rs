//! The command handlers: [`Exec`], one invoke on the core, checks who may run what and the
//! chunk limit, then runs the decoded request's command through the ABI table
//! ([`abi::Handler`]), one function per command.

use alloc::boxed::Box;
use alloc::vec::Vec;

use suit_shared::abi::{
    self, Approval, CommandId, Decrypted, DeviceFacts, Floors, Handler, Info, InstallState,
    PendingInstall, Plan, Provisioning, Reply, Request,
};
use suit_shared::boot::BootRecord;

use super::Data;
use crate::error::{Result, TaError};
use crate::platform::{Clock, Rng, Storage};
use crate::ta::session::{Session, SessionId};
use crate::ta::Core;

/// One invoke on the core: the session's id, the bulk input, the response capacity and the
/// bulk output. Implements the ABI table's [`Handler`] with the session as context.
pub(in crate::ta) struct Exec<'a, S: Storage, R: Rng, C: Clock> {
    pub core: &'a mut Core<S, R, C>,
    pub id: SessionId,
    /// The bulk data in and out.
    pub data: Data<'a>,
    /// The envelope of LOAD_MANIFEST or UPDATE_ANCHORS, copied from the data in.
    pub envelope: Vec<u8>,
    pub capacity: usize,
    /// Capacity of the bulk output (parameter 3), 0 without one.
    pub out_capacity: usize,
}

impl<S: Storage, R: Rng, C: Clock> Exec<'_, S, R, C> {
    /// Who may run what, the chunk limit, then the command; records the attempt for REPORT.
    pub(super) fn run(&mut self, s: &mut Session, request: Request) -> Result<Reply> {
        let command = request.command();
        if !s.trusted && !matches!(command, CommandId::GetInfo | CommandId::Report) {
            return Err(TaError::order(
                command,
                "this TEE client is not the one the TA was built to obey (TA_CLIENT); only \
                 GET_INFO and REPORT are open to other clients",
            ));
        }
        let max_chunk = match command {
            CommandId::StreamUpdate => self.core.config.max_chunk + abi::STREAM_HASH_ROOM,
            _ => self.core.config.max_chunk,
        };
        if self.data.len() > max_chunk
            && !matches!(command, CommandId::LoadManifest | CommandId::UpdateAnchors)
        {
            return Err(TaError::TooLarge {
                what: "a data chunk",
                size: self.data.len(),
                limit: max_chunk,
            });
        }
        s.authenticated = None;
        let pending = match command {
            CommandId::Confirm | CommandId::Rollback => {
                match self.core.state().map(|st| &st.install) {
                    Ok(InstallState::Trial(p)) => Some(p.clone()),
                    _ => None,
                }
            }
            _ => None,
        };
        let item = match request {
            Request::PayloadUpdate { component, .. }
            | Request::PayloadFinal { component }
            | Request::DecryptForInstall { component, .. }
            | Request::StreamUpdate { component, .. }
            | Request::StreamFinal { component } => Some(component),
            _ => None,
        };
        // An envelope (LOAD_MANIFEST, UPDATE_ANCHORS) is parsed in place: one copy of it in
        // TA memory (bounded by max-envelope before anything is copied).
        let limit = self.core.config.max_envelope;
        let result = match command {
            CommandId::LoadManifest | CommandId::UpdateAnchors if self.data.len() > limit => {
                Err(TaError::TooLarge {
                    what: "the envelope",
                    size: self.data.len(),
                    limit,
                })
            }
            CommandId::LoadManifest | CommandId::UpdateAnchors => {
                self.data.copy(0..self.data.len()).and_then(|envelope| {
                    self.envelope = envelope;
                    abi::dispatch(self, s, request)
                })
            }
            _ => abi::dispatch(self, s, request),
        };
        s.note_attempt(command, &self.envelope, pending, item, &result);
        result
    }
}

// Every command stays its own function (`#[inline(never)]`): inlined into `abi::dispatch`
// they made one 32 KB function whose frame and spills cost the TA 4 KB more than sixteen
// calls (measured on the GP TA: 295,808 -> 291,712 B signed).
impl<S: Storage, R: Rng, C: Clock> Handler for Exec<'_, S, R, C> {
    type Context = Session;
    type Error = TaError;

    #[inline(never)]
    fn get_info(&mut self, _: &mut Session) -> Result<Box<Info>> {
        self.core.get_info().map(Box::new)
    }

    #[inline(never)]
    fn load_manifest(
        &mut self,
        s: &mut Session,
        target_slot: u64,
        nonce: Option<Vec<u8>>,
        facts: Option<DeviceFacts>,
    ) -> Result<Plan> {
        let facts = facts.unwrap_or_default();
        self.core
            .load_manifest(self.id, s, target_slot, nonce, facts, &self.envelope)
    }

    #[inline(never)]
    fn payload_update(&mut self, s: &mut Session, component: u32, offset: u64) -> Result<()> {
        self.core.payload_update(s, component, offset, &self.data)
    }

    #[inline(never)]
    fn payload_final(&mut self, s: &mut Session, component: u32) -> Result<Approval> {
        self.core.payload_final(s, component, self.capacity)
    }

    #[inline(never)]
    fn decrypt_for_install(
        &mut self,
        s: &mut Session,
        component: u32,
        token: Vec<u8>,
        offset: u64,
        last: bool,
    ) -> Result<Decrypted> {
        self.core
            .decrypt_for_install(s, component, &token, (offset, last), &mut self.data)
    }

    #[inline(never)]
    fn stream_update(
        &mut self,
        s: &mut Session,
        component: u32,
        offset: u64,
        hashes: u32,
    ) -> Result<Decrypted> {
        self.core.stream_update(
            s,
            component,
            offset,
            hashes,
            &mut self.data,
            self.out_capacity,
        )
    }

    #[inline(never)]
    fn stream_final(&mut self, s: &mut Session, component: u32) -> Result<Approval> {
        self.core.stream_final(s, component, self.capacity)
    }

    #[inline(never)]
    fn commit(&mut self, s: &mut Session, tokens: Vec<Vec<u8>>) -> Result<PendingInstall> {
        self.core.commit(self.id, s, &tokens, self.capacity)
    }

    #[inline(never)]
    fn confirm_update(&mut self, s: &mut Session, component: u32, offset: u64) -> Result<()> {
        self.core.confirm_update(s, component, offset, &self.data)
    }

    #[inline(never)]
    fn confirm(&mut self, s: &mut Session) -> Result<Floors> {
        self.core.confirm(s, self.capacity)
    }

    #[inline(never)]
    fn rollback(&mut self, s: &mut Session) -> Result<()> {
        self.core.rollback(self.id, s)
    }

    #[inline(never)]
    fn abort(&mut self, s: &mut Session) -> Result<()> {
        s.update = None;
        s.clear_confirm();
        self.core.release_update(self.id);
        Ok(())
    }

    #[inline(never)]
    fn provision(&mut self, _: &mut Session, provisioning: Provisioning) -> Result<()> {
        self.core.provision(&provisioning)
    }

    #[inline(never)]
    fn report(&mut self, s: &mut Session, nonce: Option<Vec<u8>>) -> Result<Vec<u8>> {
        self.core.report(s, nonce)
    }

    #[inline(never)]
    fn update_anchors(&mut self, _: &mut Session) -> Result<()> {
        self.core.update_anchors(&self.envelope)
    }

    #[inline(never)]
    fn boot_verify(&mut self, _: &mut Session, slot: u64) -> Result<BootRecord> {
        self.core.boot_verify(slot)
    }
}
