//! Transport and dispatch: the GlobalPlatform parameter layout of every invoke (abi.rs
//! "Transport"), the per-command request caps, the response encoding, and the dispatch of a
//! decoded request to its command through the ABI table ([`abi::Handler`]).

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use suit_shared::abi::{
    self, encode_response, Approval, CommandId, Decrypted, DeviceFacts, Floors, Handler, Info,
    InstallState, PendingInstall, Plan, Provisioning, Rejection, Reply, Request,
};
use suit_shared::boot::BootRecord;

use super::session::{Session, SessionId};
use super::{Core, Ta};
use crate::error::{Result, TaError};
use crate::platform::{Clock, Rng, Storage};

/// One GlobalPlatform parameter as the core sees it: inputs already copied into TA memory,
/// outputs as capacities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// TEE_PARAM_TYPE_NONE.
    None,
    /// A value input.
    ValueInput(u32, u32),
    /// A value output.
    ValueOutput,
    /// A value inout.
    ValueInout(u32, u32),
    /// A memref input, copied.
    MemrefInput(Vec<u8>),
    /// A memref output of this capacity.
    MemrefOutput(usize),
    /// A memref inout, copied, with its capacity.
    MemrefInout(Vec<u8>),
}

/// Transport-level failures; nothing changed in the TA when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TeeError {
    /// Unknown command or parameter types that do not match the ABI.
    #[error("bad parameters: {0}")]
    BadParameters(&'static str),
    /// An output buffer is too small; `needed` bytes are required in parameter `param`.
    #[error("parameter {param} needs a buffer of {needed} bytes")]
    ShortBuffer {
        /// The parameter index.
        param: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The session id is not open.
    #[error("no such session")]
    NoSession,
    /// An input is larger than this command ever needs; refused before it is parsed.
    #[error("parameter {param} holds {size} bytes, more than the {limit} this command accepts")]
    ExcessData {
        /// The parameter index.
        param: usize,
        /// Its size.
        size: usize,
        /// The command's limit for it.
        limit: usize,
    },
    /// Too many sessions are open.
    #[error("too many sessions are open")]
    Busy,
}

impl TeeError {
    /// The GlobalPlatform return code for this error.
    pub fn code(&self) -> u32 {
        match self {
            TeeError::BadParameters(_) => abi::tee::ERROR_BAD_PARAMETERS,
            TeeError::ShortBuffer { .. } => abi::tee::ERROR_SHORT_BUFFER,
            TeeError::NoSession => abi::tee::ERROR_BAD_STATE,
            TeeError::ExcessData { .. } => abi::tee::ERROR_EXCESS_DATA,
            TeeError::Busy => abi::tee::ERROR_BUSY,
        }
    }
}

/// What an invoke produced: the response for parameter 1, bulk output for parameter 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The encoded response.
    pub response: Vec<u8>,
    /// Bulk output (DECRYPT_FOR_INSTALL).
    pub data: Option<Vec<u8>>,
}

/// The parameters of an invoke, checked against the command's layout.
struct Layout<'p> {
    request: &'p [u8],
    response_capacity: usize,
    data: Option<&'p [u8]>,
    out_capacity: Option<usize>,
}

fn layout(command: CommandId, params: &[Param; 4]) -> core::result::Result<Layout<'_>, TeeError> {
    let Param::MemrefInput(request) = &params[abi::PARAM_REQUEST] else {
        return Err(TeeError::BadParameters(
            "parameter 0 must be a memref input (request)",
        ));
    };
    if request.len() > command.max_request() {
        return Err(TeeError::ExcessData {
            param: abi::PARAM_REQUEST,
            size: request.len(),
            limit: command.max_request(),
        });
    }
    let Param::MemrefOutput(response_capacity) = params[abi::PARAM_RESPONSE] else {
        return Err(TeeError::BadParameters(
            "parameter 1 must be a memref output (response)",
        ));
    };
    if response_capacity < abi::MIN_RESPONSE_BUFFER {
        return Err(TeeError::ShortBuffer {
            param: abi::PARAM_RESPONSE,
            needed: abi::MIN_RESPONSE_BUFFER,
        });
    }
    let data = match (&params[abi::PARAM_DATA_IN], command.data_in()) {
        (Param::MemrefInput(d), true) => Some(d.as_slice()),
        (Param::None, false) => None,
        (_, true) => {
            return Err(TeeError::BadParameters(
                "parameter 2 must be a memref input (data)",
            ))
        }
        (_, false) => {
            return Err(TeeError::BadParameters(
                "parameter 2 must be none for this command",
            ))
        }
    };
    let out_capacity = match (&params[abi::PARAM_DATA_OUT], command.data_out()) {
        (Param::MemrefOutput(c), true) => Some(*c),
        (Param::None, false) => None,
        (_, true) => {
            return Err(TeeError::BadParameters(
                "parameter 3 must be a memref output (data)",
            ))
        }
        (_, false) => {
            return Err(TeeError::BadParameters(
                "parameter 3 must be none for this command",
            ))
        }
    };
    if let (Some(capacity), Some(d)) = (out_capacity, data) {
        let needed = d.len() + abi::DECRYPT_OUTPUT_SLACK;
        if capacity < needed {
            return Err(TeeError::ShortBuffer {
                param: abi::PARAM_DATA_OUT,
                needed,
            });
        }
    }
    Ok(Layout {
        request,
        response_capacity,
        data,
        out_capacity,
    })
}

impl<S: Storage, R: Rng, C: Clock> Ta<S, R, C> {
    /// One invoke: checks the parameter layout, runs the command, encodes the response.
    pub fn invoke(
        &mut self,
        id: SessionId,
        command: u32,
        params: &[Param; 4],
    ) -> core::result::Result<Output, TeeError> {
        let session = self.sessions.get_mut(&id).ok_or(TeeError::NoSession)?;
        let command =
            CommandId::from_u32(command).ok_or(TeeError::BadParameters("unknown command"))?;
        let layout = layout(command, params)?;
        let data = layout.data.unwrap_or_default();
        let mut out = Vec::new();
        let result = Request::decode(command, layout.request)
            .map_err(TaError::from)
            .and_then(|request| {
                let mut exec = Exec {
                    core: &mut self.core,
                    id,
                    data,
                    capacity: layout.response_capacity,
                    out: &mut out,
                    out_capacity: layout.out_capacity.unwrap_or(0),
                };
                exec.run(session, request)
            });
        let mut response = encode_response(&result.map_err(|e| e.rejection()));
        if response.len() > layout.response_capacity {
            if command == CommandId::LoadManifest {
                session.update = None;
                self.core.release_update(id);
            }
            let too_large = Rejection {
                category: suit_shared::Category::Resource,
                message: format!(
                    "the {} response of {} bytes exceeds the response buffer of {} bytes",
                    command.name(),
                    response.len(),
                    layout.response_capacity
                ),
            };
            response = encode_response(&Err(too_large));
            out.clear();
        }
        Ok(Output {
            response,
            data: layout.out_capacity.map(|_| out),
        })
    }
}

/// One invoke on the core: the session's id, the bulk input, the response capacity and the
/// bulk output. Implements the ABI table's [`Handler`] with the session as context.
pub(super) struct Exec<'a, S: Storage, R: Rng, C: Clock> {
    pub core: &'a mut Core<S, R, C>,
    pub id: SessionId,
    pub data: &'a [u8],
    pub capacity: usize,
    pub out: &'a mut Vec<u8>,
    /// Capacity of the bulk output (parameter 3), 0 without one.
    pub out_capacity: usize,
}

impl<S: Storage, R: Rng, C: Clock> Exec<'_, S, R, C> {
    /// Who may run what, the chunk limit, then the command; records the attempt for REPORT.
    fn run(&mut self, s: &mut Session, request: Request) -> Result<Reply> {
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
        let result = abi::dispatch(self, s, request);
        s.note_attempt(command, self.data, pending, item, &result);
        result
    }
}

impl<S: Storage, R: Rng, C: Clock> Handler for Exec<'_, S, R, C> {
    type Context = Session;
    type Error = TaError;

    fn get_info(&mut self, _: &mut Session) -> Result<Box<Info>> {
        self.core.get_info().map(Box::new)
    }

    fn load_manifest(
        &mut self,
        s: &mut Session,
        target_slot: u64,
        nonce: Option<Vec<u8>>,
        facts: Option<DeviceFacts>,
    ) -> Result<Plan> {
        let facts = facts.unwrap_or_default();
        self.core
            .load_manifest(self.id, s, target_slot, nonce, facts, self.data)
    }

    fn payload_update(&mut self, s: &mut Session, component: u32, offset: u64) -> Result<()> {
        self.core.payload_update(s, component, offset, self.data)
    }

    fn payload_final(&mut self, s: &mut Session, component: u32) -> Result<Approval> {
        self.core.payload_final(s, component, self.capacity)
    }

    fn decrypt_for_install(
        &mut self,
        s: &mut Session,
        component: u32,
        token: Vec<u8>,
        offset: u64,
        last: bool,
    ) -> Result<Decrypted> {
        self.core
            .decrypt_for_install(s, component, &token, (offset, last), self.data, self.out)
    }

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
            self.data,
            self.out,
            self.out_capacity,
        )
    }

    fn stream_final(&mut self, s: &mut Session, component: u32) -> Result<Approval> {
        self.core.stream_final(s, component, self.capacity)
    }

    fn commit(&mut self, s: &mut Session, tokens: Vec<Vec<u8>>) -> Result<PendingInstall> {
        self.core.commit(self.id, s, &tokens, self.capacity)
    }

    fn confirm_update(&mut self, s: &mut Session, component: u32, offset: u64) -> Result<()> {
        self.core.confirm_update(s, component, offset, self.data)
    }

    fn confirm(&mut self, s: &mut Session) -> Result<Floors> {
        self.core.confirm(s, self.capacity)
    }

    fn rollback(&mut self, s: &mut Session) -> Result<()> {
        self.core.rollback(self.id, s)
    }

    fn abort(&mut self, s: &mut Session) -> Result<()> {
        s.update = None;
        s.clear_confirm();
        self.core.release_update(self.id);
        Ok(())
    }

    fn provision(&mut self, _: &mut Session, provisioning: Provisioning) -> Result<()> {
        self.core.provision(&provisioning)
    }

    fn report(&mut self, s: &mut Session, nonce: Option<Vec<u8>>) -> Result<Vec<u8>> {
        self.core.report(s, nonce)
    }

    fn update_anchors(&mut self, _: &mut Session) -> Result<()> {
        self.core.update_anchors(self.data)
    }

    fn boot_verify(&mut self, _: &mut Session, slot: u64) -> Result<BootRecord> {
        self.core.boot_verify(slot)
    }
}
