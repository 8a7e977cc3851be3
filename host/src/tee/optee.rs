//! The OP-TEE backend: the SUIT TA in the secure world, through libteec (optee-teec).
//!
//! Every input travels in a temporary memory reference that the TA copies before use; the
//! TA answers rejections inside the response, so a TEE error code here always means a
//! transport problem, mapped to a readable message ([`suit_shared::abi::tee::message`])
//! because optee-teec calls many codes "Unknown error.".

use optee_teec::{ConnectionMethods, Context, Operation, ParamNone, ParamTmpRef, Uuid};
use suit_shared::abi::{self, CommandId};

use super::{Backend, RawOutput, Tee, TeeError};

/// A session with the SUIT TA.
pub struct OpteeSession {
    // Field order matters: the session closes before its context is finalized.
    session: optee_teec::Session,
    _context: Context,
}

impl OpteeSession {
    /// Opens a session with the TA `uuid` (e.g. [`abi::DEFAULT_TA_UUID`]) with the user login
    /// (TEEC_LOGIN_USER): the kernel vouches for this process's effective uid, and the TA only
    /// obeys the uid it was built for (`TA_CLIENT`, default root; see
    /// [`super::linux_user_identity`]).
    pub fn open(uuid: &str) -> Result<Self, TeeError> {
        let uuid = Uuid::parse_str(uuid)
            .map_err(|_| TeeError::Backend(format!("{uuid:?} is not a TA UUID")))?;
        let mut context = Context::new().map_err(|e| TeeError::Tee {
            command: "initialize context",
            code: e.raw_code(),
            message: format!(
                "{} (is the OP-TEE driver loaded and /dev/tee0 accessible?)",
                abi::tee::message(e.raw_code())
            ),
        })?;
        let session = context
            .open_session_with_login(uuid, ConnectionMethods::LoginUser)
            .map_err(|e| open_session_error(e.raw_code()))?;
        Ok(OpteeSession {
            session,
            _context: context,
        })
    }
}

/// A failed open session, explained. OP-TEE loads a TA only after checking its signature and
/// its version record in OP-TEE's own secure storage (REE-FS files whose integrity is anchored
/// in RPMB): when those files were wiped or rolled back, or RPMB cannot be reached, no TA
/// loads and the code alone (e.g. "security violation") would point at the TA's signature.
fn open_session_error(code: u32) -> TeeError {
    let mut message = abi::tee::message(code).to_string();
    if code == abi::tee::ERROR_ITEM_NOT_FOUND {
        message.push_str(
            "; or OP-TEE cannot reach its secure storage (RPMB: is the eMMC there?), without \
             which it loads no TA (see the secure console)",
        );
    } else if matches!(
        code,
        abi::tee::ERROR_SECURITY
            | abi::tee::ERROR_CORRUPT_OBJECT
            | abi::tee::ERROR_STORAGE_NOT_AVAILABLE
    ) {
        message.push_str(
            "; OP-TEE refused to load the TA: either its signature, or OP-TEE's secure storage \
             (its files in /data/tee wiped or rolled back, or RPMB unreachable) failed a check; \
             the TA does not run rather than start without its state (see the secure console)",
        );
    }
    TeeError::Tee {
        command: "open session",
        code,
        message,
    }
}

fn tee_error(command: CommandId, e: &optee_teec::Error, short: Option<(usize, usize)>) -> TeeError {
    let code = e.raw_code();
    let mut message = abi::tee::message(code).to_string();
    if let Some((param, needed)) = short.filter(|_| code == abi::tee::ERROR_SHORT_BUFFER) {
        message.push_str(&format!(" (parameter {param} needs {needed} bytes)"));
    }
    TeeError::Tee {
        command: command.name(),
        code,
        message,
    }
}

impl Tee for OpteeSession {
    fn backend(&self) -> Backend {
        Backend::Optee
    }

    fn invoke(
        &mut self,
        command: CommandId,
        request: &[u8],
        data_in: Option<&[u8]>,
        response_capacity: usize,
        data_out_capacity: Option<usize>,
    ) -> Result<RawOutput, TeeError> {
        let mut response = vec![0u8; response_capacity];
        let mut data = vec![0u8; data_out_capacity.unwrap_or(0)];
        let p0 = ParamTmpRef::new_input(request);
        let p1 = ParamTmpRef::new_output(&mut response);
        let (response_len, data_len) = match (data_in, data_out_capacity) {
            (Some(input), Some(_)) => {
                let p3 = ParamTmpRef::new_output(&mut data);
                let mut op = Operation::new(0, p0, p1, ParamTmpRef::new_input(input), p3);
                let result = self.session.invoke_command(command as u32, &mut op);
                let (_, r, _, d) = op.parameters();
                result.map_err(|e| tee_error(command, &e, Some((3, d.updated_size()))))?;
                (r.updated_size(), d.updated_size())
            }
            (Some(input), None) => {
                let mut op = Operation::new(0, p0, p1, ParamTmpRef::new_input(input), ParamNone);
                let result = self.session.invoke_command(command as u32, &mut op);
                let (_, r, _, _) = op.parameters();
                result.map_err(|e| tee_error(command, &e, Some((1, r.updated_size()))))?;
                (r.updated_size(), 0)
            }
            (None, Some(_)) => {
                let p3 = ParamTmpRef::new_output(&mut data);
                let mut op = Operation::new(0, p0, p1, ParamNone, p3);
                let result = self.session.invoke_command(command as u32, &mut op);
                let (_, r, _, d) = op.parameters();
                result.map_err(|e| tee_error(command, &e, None))?;
                (r.updated_size(), d.updated_size())
            }
            (None, None) => {
                let mut op = Operation::new(0, p0, p1, ParamNone, ParamNone);
                let result = self.session.invoke_command(command as u32, &mut op);
                let (_, r, _, _) = op.parameters();
                result.map_err(|e| tee_error(command, &e, Some((1, r.updated_size()))))?;
                (r.updated_size(), 0)
            }
        };
        response.truncate(response_len.min(response_capacity));
        data.truncate(data_len.min(data.len()));
        Ok(RawOutput { response, data })
    }
}
