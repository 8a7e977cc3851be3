//! The TA: sessions and the commands of the ABI.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use suit_shared::abi::{
    self, encode_response, Algorithms, Approval, CommandId, Info, InstallState, InstalledComponent,
    LastOutcome, PendingInstall, PlanItem, Provisioning, Rejection, Reply, Request,
};
use suit_shared::auth::{alg, TrustAnchor};
use suit_shared::boot::{BootComponent, BootRecord, BootStatus};
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::error::Uuid;
use suit_shared::manifest::Manifest;
use suit_shared::processor::{DeviceIdentity, Section};
use suit_shared::report::{Reason, Report, ReportResult, INCOMPLETE, TRIAL_FAILED};
use suit_shared::token::{Claims, Token, NONCE_LEN};
use suit_shared::verity::VerityParams;
use suit_shared::{Category, Error};

use crate::error::{Result, TaError};
use crate::plan::{self, Computed, Step};
use crate::platform::{Clock, Rng, Storage};
use crate::state::{Kek, State};
use crate::stream::{Decrypt, PayloadStream};

/// The sections LOAD_MANIFEST and COMMIT run (after the shared sequence).
const SECTIONS: [Section; 2] = [Section::PayloadFetch, Section::Install];

fn offset_error(command: CommandId, component: u32, offset: u64, received: u64) -> TaError {
    TaError::order(
        command,
        format!(
            "a chunk at offset {offset} of component {component}, but the TA has received \
             {received} bytes of it: resume at offset {received} or restart at 0"
        ),
    )
}

/// The staging component of a session's plan item.
fn item_staging(s: &Session, component: u32) -> Option<usize> {
    s.update
        .as_ref()?
        .items
        .iter()
        .find(|i| i.plan.index == component)?
        .staging
}

/// The reason a token did not verify, without the wording of manifest authentication.
pub(crate) fn token_reason(e: Error) -> alloc::string::String {
    match e {
        Error::NotAuthenticated(reason) => reason,
        Error::InvalidAuthenticationBlock { reason, .. } => alloc::string::String::from(reason),
        other => format!("{other}"),
    }
}

/// Build-time configuration of the TA.
#[derive(Debug, Clone)]
pub struct Config {
    /// Keys that may sign envelopes.
    pub anchors: Vec<TrustAnchor>,
    /// The device's vendor id (PROVISION may override it).
    pub vendor_id: Uuid,
    /// The device's class id (PROVISION may override it).
    pub class_id: Uuid,
    /// Largest bulk chunk accepted (at most [`abi::MAX_CHUNK_LIMIT`]).
    pub max_chunk: usize,
    /// Largest envelope accepted.
    pub max_envelope: usize,
    /// Which TEE client may use the commands that change state (all but GET_INFO and REPORT).
    pub client: ClientPolicy,
    /// A factory build: PROVISION is available (once). Production builds leave it closed.
    pub factory: bool,
}

/// Who opened a session, as the TEE vouches for it (GlobalPlatform `gpd.client.identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The login method ([`abi::login`]).
    pub login: u32,
    /// The client UUID: for a Linux user derived by the kernel from its effective uid
    /// ([`abi::login::LINUX_CLIENT_NAMESPACE`]); nil for a public login.
    pub uuid: [u8; 16],
}

impl ClientIdentity {
    /// A public login: no identity.
    pub const PUBLIC: ClientIdentity = ClientIdentity {
        login: abi::login::PUBLIC,
        uuid: [0; 16],
    };
}

/// Which clients may change the TA's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPolicy {
    /// Any client (development only: any process that can open /dev/tee0 may install, roll
    /// back or provision).
    Any,
    /// Only this identity (e.g. the agent's Linux user).
    Only(ClientIdentity),
}

impl ClientPolicy {
    /// Whether `client` may change state.
    pub fn allows(&self, client: &ClientIdentity) -> bool {
        match self {
            ClientPolicy::Any => true,
            ClientPolicy::Only(allowed) => allowed == client,
        }
    }
}

/// Most sessions open at once; more are refused (each may hold an update in TA memory).
pub const MAX_SESSIONS: usize = 16;

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

/// A session handle.
pub type SessionId = u32;

enum ItemState {
    Pending,
    Streaming(PayloadStream),
    Approved(Computed),
    Installing(Computed, PayloadStream),
    Installed(Computed),
}

struct Item {
    plan: PlanItem,
    /// The staging component the bytes pass through (source of a copy), if any.
    staging: Option<usize>,
    /// The payload of the plan the item installs.
    payload: usize,
    /// The payload of the plan its bytes arrive as, when they are decrypted on the way.
    fetched_payload: Option<usize>,
    /// Digest and size of the bytes as streamed (before decryption), once approved.
    fetched: Option<Computed>,
    /// The dm-verity tree of the approved plaintext, once approved (verified boot).
    verity: Option<VerityParams>,
    state: ItemState,
}

impl Item {
    fn approved(&self) -> Option<&Computed> {
        match &self.state {
            ItemState::Approved(c) | ItemState::Installing(c, _) | ItemState::Installed(c) => {
                Some(c)
            }
            ItemState::Pending | ItemState::Streaming(_) => None,
        }
    }
}

struct Update {
    envelope: Vec<u8>,
    manifest_digest: DigestValue,
    sequence_number: u64,
    slot: u64,
    items: Vec<Item>,
    trace: Vec<Step>,
    committed: bool,
    /// The verifier's nonce given to LOAD_MANIFEST, carried into every token.
    verifier_nonce: Option<Vec<u8>>,
}

struct Session {
    /// Whether the client may use the commands that change state.
    trusted: bool,
    /// This session committed an install: it may not CONFIRM it, even after ABORT (the
    /// confirmation belongs to the trial boot, in a new session).
    committed: bool,
    /// The reference of the envelope the current LOAD_MANIFEST authenticated, if it did.
    authenticated: Option<(alloc::string::String, DigestValue)>,
    nonce: [u8; NONCE_LEN],
    update: Option<Update>,
    confirm: Vec<Option<Computed>>,
    confirming: Option<(usize, PayloadStream)>,
    /// What REPORT reports: this session's last update attempt.
    attempt: Option<Attempt>,
}

/// One update attempt as the TA saw it, for REPORT.
struct Attempt {
    manifest_uri: alloc::string::String,
    manifest_digest: DigestValue,
    result: ReportResult,
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

/// The trusted application core.
pub struct Ta<S: Storage, R: Rng, C: Clock> {
    config: Config,
    storage: S,
    rng: R,
    clock: C,
    state: Option<State>,
    sessions: BTreeMap<SessionId, Session>,
    next_session: SessionId,
    update_owner: Option<SessionId>,
}

impl<S: Storage, R: Rng, C: Clock> Ta<S, R, C> {
    /// A TA over the given platform. State is loaded (or created) on first use.
    pub fn new(config: Config, storage: S, rng: R, clock: C) -> Self {
        Ta {
            config,
            storage,
            rng,
            clock,
            state: None,
            sessions: BTreeMap::new(),
            next_session: 1,
            update_owner: None,
        }
    }

    /// Gives back the storage, e.g. to start a new TA instance on it (a restart).
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Opens a session for `client` with a fresh random nonce; never reuses the id of a live
    /// session. Fails when [`MAX_SESSIONS`] are open.
    pub fn open_session(
        &mut self,
        client: ClientIdentity,
    ) -> core::result::Result<SessionId, TeeError> {
        if self.sessions.len() >= MAX_SESSIONS {
            return Err(TeeError::Busy);
        }
        // Fewer than MAX_SESSIONS ids are taken, so a free one is found within that many steps.
        let mut id = self.next_session;
        while self.sessions.contains_key(&id) {
            id = id.wrapping_add(1).max(1);
        }
        self.next_session = id.wrapping_add(1).max(1);
        let mut session = Session {
            trusted: self.config.client.allows(&client),
            committed: false,
            authenticated: None,
            nonce: [0; NONCE_LEN],
            update: None,
            confirm: Vec::new(),
            confirming: None,
            attempt: None,
        };
        self.rng.fill(&mut session.nonce);
        self.sessions.insert(id, session);
        Ok(id)
    }

    /// The largest input the glue may copy for parameter `param` of `command`: the request's
    /// cap ([`CommandId::max_request`]), the envelope or chunk limit for bulk input, 0 when
    /// the command takes no input there (or is unknown).
    pub fn input_limit(&self, command: u32, param: usize) -> usize {
        let Some(command) = CommandId::from_u32(command) else {
            return 0;
        };
        match param {
            abi::PARAM_REQUEST => command.max_request(),
            abi::PARAM_DATA_IN if command == CommandId::LoadManifest => self.config.max_envelope,
            abi::PARAM_DATA_IN if command.data_in() => self.config.max_chunk,
            _ => 0,
        }
    }

    /// Closes a session, dropping any update it held.
    pub fn close_session(&mut self, id: SessionId) {
        self.sessions.remove(&id);
        if self.update_owner == Some(id) {
            self.update_owner = None;
        }
    }

    /// One invoke: checks the parameter layout, runs the command, encodes the response.
    pub fn invoke(
        &mut self,
        id: SessionId,
        command: u32,
        params: &[Param; 4],
    ) -> core::result::Result<Output, TeeError> {
        if !self.sessions.contains_key(&id) {
            return Err(TeeError::NoSession);
        }
        let command =
            CommandId::from_u32(command).ok_or(TeeError::BadParameters("unknown command"))?;
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

        let mut out = Vec::new();
        let result = Request::decode(command, request)
            .map_err(TaError::from)
            .and_then(|req| {
                self.dispatch(
                    id,
                    req,
                    data.unwrap_or_default(),
                    response_capacity,
                    &mut out,
                )
            });
        let result = result.map_err(|e| e.rejection());
        let mut response = encode_response(&result);
        if response.len() > response_capacity {
            if command == CommandId::LoadManifest {
                self.drop_update(id);
            }
            let too_large = Rejection {
                category: suit_shared::Category::Resource,
                message: format!(
                    "the {} response of {} bytes exceeds the response buffer of {} bytes",
                    command.name(),
                    response.len(),
                    response_capacity
                ),
            };
            response = encode_response(&Err(too_large));
            out.clear();
        }
        Ok(Output {
            response,
            data: command.data_out().then_some(out),
        })
    }

    fn drop_update(&mut self, id: SessionId) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.update = None;
        }
        if self.update_owner == Some(id) {
            self.update_owner = None;
        }
    }

    fn dispatch(
        &mut self,
        id: SessionId,
        req: Request,
        data: &[u8],
        capacity: usize,
        out: &mut Vec<u8>,
    ) -> Result<Reply> {
        let mut session = self
            .sessions
            .remove(&id)
            .ok_or_else(|| TaError::order(req.command(), "no session"))?;
        let result = self.run(id, &mut session, req, data, capacity, out);
        self.sessions.insert(id, session);
        result
    }

    fn run(
        &mut self,
        id: SessionId,
        s: &mut Session,
        req: Request,
        data: &[u8],
        capacity: usize,
        out: &mut Vec<u8>,
    ) -> Result<Reply> {
        let command = req.command();
        if !s.trusted && !matches!(command, CommandId::GetInfo | CommandId::Report) {
            return Err(TaError::order(
                command,
                "this TEE client is not the one the TA was built to obey (TA_CLIENT); only \
                 GET_INFO and REPORT are open to other clients",
            ));
        }
        if data.len() > self.config.max_chunk && !matches!(req, Request::LoadManifest { .. }) {
            return Err(TaError::TooLarge {
                what: "a data chunk",
                size: data.len(),
                limit: self.config.max_chunk,
            });
        }
        s.authenticated = None;
        let pending = match command {
            CommandId::Confirm | CommandId::Rollback => match self.state().map(|st| &st.install) {
                Ok(InstallState::Trial(p)) => Some(p.clone()),
                _ => None,
            },
            _ => None,
        };
        let item = match req {
            Request::PayloadUpdate { component, .. }
            | Request::PayloadFinal { component }
            | Request::DecryptForInstall { component, .. } => Some(component),
            _ => None,
        };
        let result = self.execute(id, s, req, data, capacity, out);
        Self::note_attempt(s, command, data, pending, item, &result);
        result
    }

    /// Fails unless `reply` encodes within `capacity` (checked before any state changes, so
    /// that a reply too large for the client's buffer never follows a change it reports).
    fn fits(reply: &Reply, capacity: usize) -> Result<()> {
        let size = encode_response(&Ok(reply.clone())).len();
        if size > capacity {
            return Err(TaError::TooLarge {
                what: "the response",
                size,
                limit: capacity,
            });
        }
        Ok(())
    }

    /// Records what REPORT will say about this session's attempt.
    fn note_attempt(
        s: &mut Session,
        command: CommandId,
        data: &[u8],
        pending: Option<PendingInstall>,
        item: Option<u32>,
        result: &Result<Reply>,
    ) {
        match (command, result) {
            (CommandId::LoadManifest, _) => {
                // What an envelope says about itself is only reported once it authenticated.
                let (manifest_uri, manifest_digest) = s.authenticated.take().unwrap_or_else(|| {
                    (alloc::string::String::new(), Report::digest_of_input(data))
                });
                let result = match result {
                    // Success only once committed.
                    Ok(_) => ReportResult::Failure {
                        code: INCOMPLETE,
                        reason: Reason::OperationFailed,
                        section: 0,
                        component: 0,
                    },
                    Err(e) => failure(e, item),
                };
                s.attempt = Some(Attempt {
                    manifest_uri,
                    manifest_digest,
                    result,
                });
            }
            (CommandId::Commit, Ok(_)) => {
                // Success only once the trial boot confirms it.
                if let Some(a) = s.attempt.as_mut() {
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
                if let Some(a) = s.attempt.as_mut() {
                    a.result = failure(e, item);
                }
            }
            (CommandId::Confirm | CommandId::Rollback, Ok(_)) => {
                if let Some(p) = pending {
                    let result = if command == CommandId::Confirm {
                        ReportResult::Success
                    } else {
                        ReportResult::Failure {
                            code: TRIAL_FAILED,
                            reason: Reason::OperationFailed,
                            section: 0,
                            component: 0,
                        }
                    };
                    s.attempt = Some(Attempt {
                        manifest_uri: alloc::string::String::new(),
                        manifest_digest: p.manifest_digest,
                        result,
                    });
                }
            }
            (CommandId::Confirm, Err(e)) => {
                if let Some(p) = pending {
                    s.attempt = Some(Attempt {
                        manifest_uri: alloc::string::String::new(),
                        manifest_digest: p.manifest_digest,
                        result: failure(e, item),
                    });
                }
            }
            _ => {}
        }
    }

    fn report(&mut self, s: &Session, nonce: Option<Vec<u8>>) -> Result<Reply> {
        let attempt = s.attempt.as_ref().ok_or_else(|| {
            TaError::order(
                CommandId::Report,
                "this session has no update attempt to report",
            )
        })?;
        let report = Report {
            manifest_uri: attempt.manifest_uri.clone(),
            manifest_digest: attempt.manifest_digest.clone(),
            nonce,
            result: attempt.result.clone(),
        };
        let key = self.state()?.device_key.clone();
        Ok(Reply::Report(report.sign(&key)?))
    }

    fn execute(
        &mut self,
        id: SessionId,
        s: &mut Session,
        req: Request,
        data: &[u8],
        capacity: usize,
        out: &mut Vec<u8>,
    ) -> Result<Reply> {
        match req {
            Request::GetInfo => self.get_info().map(|i| Reply::Info(Box::new(i))),
            Request::Report { nonce } => self.report(s, nonce),
            Request::LoadManifest { target_slot, nonce } => {
                self.load_manifest(id, s, (target_slot, nonce), data)
            }
            Request::PayloadUpdate { component, offset } => {
                self.payload_update(s, component, offset, data)
            }
            Request::PayloadFinal { component } => self.payload_final(s, component, capacity),
            Request::DecryptForInstall {
                component,
                token,
                offset,
                last,
            } => self.decrypt_for_install(s, component, &token, (offset, last), data, out),
            Request::Commit { tokens } => self.commit(id, s, &tokens, capacity),
            Request::ConfirmUpdate { component, offset } => {
                self.confirm_update(s, component, offset, data)
            }
            Request::Confirm => self.confirm(s, capacity),
            Request::Rollback => self.rollback(id, s),
            Request::Abort => {
                s.update = None;
                s.confirm.clear();
                s.confirming = None;
                if self.update_owner == Some(id) {
                    self.update_owner = None;
                }
                Ok(Reply::Done)
            }
            Request::Provision(p) => self.provision(&p),
            Request::BootVerify { slot } => self.boot_verify(slot),
        }
    }

    // ----- state -------------------------------------------------------------------------

    fn state(&mut self) -> Result<&State> {
        if self.state.is_none() {
            self.state = Some(State::load_or_create(&mut self.storage, &mut self.rng)?);
        }
        self.state
            .as_ref()
            .ok_or_else(|| TaError::CorruptState(alloc::string::String::from("not loaded")))
    }

    /// Applies `f` to a copy of the state and stores it atomically; the cached state changes
    /// only when the store succeeded.
    fn change_state(&mut self, f: impl FnOnce(&mut State) -> Result<()>) -> Result<()> {
        let mut next = self.state()?.clone();
        f(&mut next)?;
        match next.store(&mut self.storage) {
            Ok(()) => {
                self.state = Some(next);
                Ok(())
            }
            Err(e) => {
                // What storage holds now is the old or the new object: read it again next time.
                self.state = None;
                Err(e)
            }
        }
    }

    fn identity(state: &State, config: &Config) -> DeviceIdentity {
        DeviceIdentity {
            vendor_id: state.vendor_id.unwrap_or(config.vendor_id),
            class_id: state.class_id.unwrap_or(config.class_id),
            device_id: state.device_id,
        }
    }

    // ----- commands ----------------------------------------------------------------------

    fn get_info(&mut self) -> Result<Info> {
        let kind = self.storage.kind();
        let config = self.config.clone();
        let state = self.state()?;
        let identity = Self::identity(state, &config);
        Ok(Info {
            abi_version: abi::ABI_VERSION,
            max_chunk: u32::try_from(config.max_chunk).unwrap_or(u32::MAX),
            max_envelope: u32::try_from(config.max_envelope).unwrap_or(u32::MAX),
            algorithms: Algorithms {
                digest: alloc::vec![
                    DigestAlg::Sha256.cose_id(),
                    DigestAlg::Sha384.cose_id(),
                    DigestAlg::Sha512.cose_id()
                ],
                signature: alloc::vec![alg::ES256, alg::ESP256, alg::ES384, alg::ESP384],
                content_encryption: crate::crypto::CONTENT_ALGS.to_vec(),
                key_distribution: crate::crypto::KEY_DISTRIBUTION_ALGS.to_vec(),
            },
            vendor_id: identity.vendor_id,
            class_id: identity.class_id,
            device_id: identity.device_id,
            device_public_key: state
                .device_key
                .verifying_key()
                .to_sec1_point(false)
                .as_bytes()
                .to_vec(),
            storage: kind,
            provisioned: state.provisioned,
            kek_present: state.kek.is_some(),
            floors: state.floors.clone(),
            install: state.install.clone(),
            last_outcome: state.last_outcome,
        })
    }

    fn load_manifest(
        &mut self,
        id: SessionId,
        s: &mut Session,
        (slot, verifier_nonce): (u64, Option<Vec<u8>>),
        envelope: &[u8],
    ) -> Result<Reply> {
        const CMD: CommandId = CommandId::LoadManifest;
        if s.update.is_some() {
            return Err(TaError::order(
                CMD,
                "this session already holds an update; ABORT it first",
            ));
        }
        if self.update_owner.is_some_and(|owner| owner != id) {
            return Err(TaError::order(
                CMD,
                "another session has an update in progress",
            ));
        }
        if envelope.len() > self.config.max_envelope {
            return Err(TaError::TooLarge {
                what: "the envelope",
                size: envelope.len(),
                limit: self.config.max_envelope,
            });
        }
        let now = self.clock.now();
        let config = self.config.clone();
        let state = self.state()?.clone();
        if let InstallState::Trial(p) = &state.install {
            return Err(TaError::order(
                CMD,
                format!(
                    "an install (sequence number {}, slot {}) is pending: CONFIRM or ROLLBACK it first",
                    p.sequence_number, p.slot
                ),
            ));
        }
        // The envelope is already a copy in TA memory (REQ.SEC.MFST.CONST); parse only after
        // authentication.
        let authentic = Manifest::authenticate(envelope, &config.anchors)?;
        let manifest = &authentic.manifest;
        if let Some(auth) = &authentic.envelope.auth {
            if let Some(digest) = DigestValue::new(auth.digest.alg, auth.digest.bytes) {
                let uri = manifest.reference_uri.map(alloc::string::String::from);
                s.authenticated = Some((uri.unwrap_or_default(), digest));
            }
        }
        for component in &manifest.components {
            let id: abi::ComponentIdBytes = component.0.iter().map(|p| p.to_vec()).collect();
            let mut encoded = suit_shared::cbor::Writer::new();
            abi::write_component_id(&mut encoded, &id);
            let size = encoded.into_bytes().len();
            if size > abi::MAX_COMPONENT_ID {
                return Err(TaError::TooLarge {
                    what: "a component id",
                    size,
                    limit: abi::MAX_COMPONENT_ID,
                });
            }
            manifest.check_sequence_number(state.floor(&id))?;
        }
        let plan::Plan {
            items: planned,
            trace,
        } = plan::plan(
            &authentic,
            &SECTIONS,
            &Self::identity(&state, &config),
            slot,
            now,
        )?;
        let items: Vec<PlanItem> = planned.iter().map(|p| p.item.clone()).collect();
        for item in &items {
            if let Some(info) = &item.encryption_info {
                crate::crypto::check_recipient(info, &state)?;
            }
        }
        let auth = authentic
            .envelope
            .auth
            .as_ref()
            .ok_or(TaError::Suit(Error::BareManifest))?;
        let manifest_digest =
            DigestValue::new(auth.digest.alg, auth.digest.bytes).ok_or(Error::InvalidValue {
                context: "authentication wrapper",
                element: "digest",
                reason: "length does not match its algorithm",
            })?;
        let plan = abi::Plan {
            manifest_digest: manifest_digest.clone(),
            sequence_number: manifest.sequence_number,
            slot,
            items: items.clone(),
        };
        s.update = Some(Update {
            envelope: envelope.to_vec(),
            manifest_digest,
            sequence_number: plan.sequence_number,
            slot,
            items: planned
                .into_iter()
                .map(|p| Item {
                    plan: p.item,
                    staging: p.staging,
                    payload: p.payload,
                    fetched_payload: p.fetched_payload,
                    fetched: None,
                    verity: None,
                    state: ItemState::Pending,
                })
                .collect(),
            trace,
            committed: false,
            verifier_nonce,
        });
        self.update_owner = Some(id);
        Ok(Reply::Plan(plan))
    }

    fn open_update(s: &mut Session, command: CommandId) -> Result<&mut Update> {
        match s.update.as_mut() {
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

    fn item(update: &mut Update, command: CommandId, component: u32) -> Result<&mut Item> {
        update
            .items
            .iter_mut()
            .find(|i| i.plan.index == component)
            .ok_or_else(|| {
                TaError::order(
                    command,
                    format!("component {component} is not in the install plan"),
                )
            })
    }

    fn new_stream(
        &mut self,
        item: &PlanItem,
        alg: DigestAlg,
        limit: Option<u64>,
    ) -> Result<PayloadStream> {
        let decryptor: Option<Box<dyn Decrypt>> = match &item.encryption_info {
            None => None,
            Some(info) => {
                let state = self.state()?;
                Some(crate::crypto::decryptor(info, state)?)
            }
        };
        Ok(PayloadStream::new(
            item.index as usize,
            alg,
            limit,
            decryptor,
        ))
    }

    /// The stream for PAYLOAD_UPDATE: the plaintext checked against the plan, and the bytes as
    /// they arrive against the staging component's expectations.
    fn payload_stream(&mut self, plan: &PlanItem) -> Result<PayloadStream> {
        let alg = plan
            .digest
            .as_ref()
            .map_or(DigestAlg::Sha256, DigestValue::alg);
        // dm-verity salt: the image digest the manifest declares, known before the first byte.
        let salt = plan.digest.as_ref().map_or(&[][..], DigestValue::as_bytes);
        let stream = self.new_stream(plan, alg, plan.size)?.with_verity(salt)?;
        Ok(match (&plan.fetch_digest, plan.fetch_size) {
            (None, None) => stream,
            (digest, size) => stream.with_fetched(
                digest.as_ref().map_or(DigestAlg::Sha256, DigestValue::alg),
                size,
            ),
        })
    }

    fn payload_update(
        &mut self,
        s: &mut Session,
        component: u32,
        offset: u64,
        chunk: &[u8],
    ) -> Result<Reply> {
        const CMD: CommandId = CommandId::PayloadUpdate;
        let update = Self::open_update(s, CMD)?;
        let item = Self::item(update, CMD, component)?;
        let mut stream = match core::mem::replace(&mut item.state, ItemState::Pending) {
            ItemState::Streaming(stream) if offset != 0 && offset != stream.received() => {
                let received = stream.received();
                item.state = ItemState::Streaming(stream);
                return Err(offset_error(CMD, component, offset, received));
            }
            ItemState::Streaming(stream) if offset != 0 => stream,
            ItemState::Pending if offset != 0 => {
                return Err(offset_error(CMD, component, offset, 0));
            }
            ItemState::Pending | ItemState::Streaming(_) => {
                let plan = item.plan.clone();
                self.payload_stream(&plan)?
            }
            other => {
                item.state = other;
                return Err(TaError::order(
                    CMD,
                    format!("component {component} is already approved"),
                ));
            }
        };
        // On error the item goes back to Pending: the agent may stream it again from the start.
        stream.update(chunk, None)?;
        let update = Self::open_update(s, CMD)?;
        Self::item(update, CMD, component)?.state = ItemState::Streaming(stream);
        Ok(Reply::Done)
    }

    fn claims(
        update: &Update,
        item: &PlanItem,
        computed: &Computed,
        nonce: [u8; NONCE_LEN],
    ) -> Claims {
        Claims {
            manifest_digest: update.manifest_digest.clone(),
            sequence_number: update.sequence_number,
            component_id: item.component_id.clone(),
            slot: update.slot,
            image_digest: computed.digest.clone(),
            image_size: computed.size,
            nonce,
            verifier_nonce: update.verifier_nonce.clone(),
        }
    }

    fn payload_final(&mut self, s: &mut Session, component: u32, capacity: usize) -> Result<Reply> {
        const CMD: CommandId = CommandId::PayloadFinal;
        let nonce = s.nonce;
        let update = Self::open_update(s, CMD)?;
        let item = Self::item(update, CMD, component)?;
        let plan = item.plan.clone();
        let stream = match core::mem::replace(&mut item.state, ItemState::Pending) {
            ItemState::Streaming(stream) => stream,
            ItemState::Pending => self.payload_stream(&plan)?,
            other => {
                item.state = other;
                return Err(TaError::order(
                    CMD,
                    format!("component {component} is already approved"),
                ));
            }
        };
        let index = plan.index as usize;
        let staging = item_staging(s, component).unwrap_or(index);
        let (computed, fetched, verity) = stream.finish_verified(None, |fetched| {
            if let Some(size) = plan.fetch_size {
                if size != fetched.size {
                    return Err(Error::ImageSizeMismatch {
                        component: staging,
                        expected: size,
                        actual: fetched.size,
                    });
                }
            }
            match &plan.fetch_digest {
                Some(digest) if !digest.as_suit_digest().matches(&fetched.digest) => {
                    Err(Error::ImageDigestMismatch { component: staging })
                }
                _ => Ok(()),
            }
        })?;
        if let Some(size) = plan.size {
            if size != computed.size {
                return Err(Error::ImageSizeMismatch {
                    component: index,
                    expected: size,
                    actual: computed.size,
                }
                .into());
            }
        }
        if let Some(digest) = &plan.digest {
            if !digest.as_suit_digest().matches(&computed.digest) {
                return Err(Error::ImageDigestMismatch { component: index }.into());
            }
        }
        let key = self.state()?.device_key.clone();
        let update = Self::open_update(s, CMD)?;
        let token = Self::claims(update, &plan, &computed, nonce).sign(&key)?;
        let reply = Reply::Approval(Approval {
            token,
            digest: computed.digest.clone(),
            size: computed.size,
        });
        // The stream is consumed: on a reply too large the component streams again from 0.
        Self::fits(&reply, capacity)?;
        let item = Self::item(update, CMD, component)?;
        item.fetched = fetched;
        item.verity = verity;
        item.state = ItemState::Approved(computed);
        Ok(reply)
    }

    fn check_token(&mut self, token: &[u8], expected: &Claims) -> Result<()> {
        let key = *self.state()?.device_key.verifying_key();
        let verified = Token::verify(token, &key).map_err(|e| TaError::Token(token_reason(e)))?;
        if verified.claims != *expected {
            return Err(TaError::Token(alloc::string::String::from(
                "it does not approve this session's component (another session, manifest, \
                 component, slot or image)",
            )));
        }
        Ok(())
    }

    fn decrypt_for_install(
        &mut self,
        s: &mut Session,
        component: u32,
        token: &[u8],
        (offset, last): (u64, bool),
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Reply> {
        const CMD: CommandId = CommandId::DecryptForInstall;
        let nonce = s.nonce;
        let update = Self::open_update(s, CMD)?;
        let item = Self::item(update, CMD, component)?;
        let plan = item.plan.clone();
        if plan.encryption_info.is_none() {
            return Err(TaError::order(
                CMD,
                format!(
                    "component {component} is not encrypted: write the approved bytes as they are"
                ),
            ));
        }
        let Some(approved) = item.approved().cloned() else {
            return Err(TaError::order(
                CMD,
                format!("component {component} is not approved (PAYLOAD_FINAL first)"),
            ));
        };
        let expected = Self::claims(update, &plan, &approved, nonce);
        self.check_token(token, &expected)?;
        let update = Self::open_update(s, CMD)?;
        let item = Self::item(update, CMD, component)?;
        let stream =
            match core::mem::replace(&mut item.state, ItemState::Approved(approved.clone())) {
                ItemState::Installing(c, stream) if offset != 0 && offset != stream.received() => {
                    let received = stream.received();
                    item.state = ItemState::Installing(c, stream);
                    return Err(offset_error(CMD, component, offset, received));
                }
                ItemState::Installing(_, stream) if offset != 0 => Some(stream),
                previous if offset != 0 => {
                    item.state = previous;
                    return Err(offset_error(CMD, component, offset, 0));
                }
                // Offset 0: (re)start; an Installed component may be written again.
                _ => None,
            };
        let mut stream = match stream {
            Some(stream) => stream,
            None => self.new_stream(&plan, approved.digest.alg(), Some(approved.size))?,
        };
        stream.update(chunk, Some(out))?;
        let update = Self::open_update(s, CMD)?;
        let item = Self::item(update, CMD, component)?;
        if !last {
            item.state = ItemState::Installing(approved, stream);
            return Ok(Reply::Decrypted {
                written: u32::try_from(out.len()).unwrap_or(u32::MAX),
                done: false,
            });
        }
        let (again, _) = stream.finish(Some(out), |_| Ok(()))?;
        if again != approved {
            out.clear();
            return Err(Error::ImageDigestMismatch {
                component: plan.index as usize,
            }
            .into());
        }
        item.state = ItemState::Installed(approved);
        Ok(Reply::Decrypted {
            written: u32::try_from(out.len()).unwrap_or(u32::MAX),
            done: true,
        })
    }

    fn commit(
        &mut self,
        id: SessionId,
        s: &mut Session,
        tokens: &[Vec<u8>],
        capacity: usize,
    ) -> Result<Reply> {
        const CMD: CommandId = CommandId::Commit;
        let nonce = s.nonce;
        let update = Self::open_update(s, CMD)?;
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
        let mut computed = alloc::vec![None; payloads];
        for item in &update.items {
            let index = item.plan.index;
            let ok = match (&item.state, &item.plan.encryption_info) {
                (ItemState::Installed(c), Some(_)) | (ItemState::Approved(c), None) => Some(c),
                _ => None,
            };
            let Some(c) = ok else {
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
            expected.push(Self::claims(update, &item.plan, c, nonce));
            if let Some(slot) = computed.get_mut(item.payload) {
                *slot = Some(c.clone());
            }
            if let Some(slot) = item.fetched_payload.and_then(|p| computed.get_mut(p)) {
                *slot = item.fetched.clone();
            }
        }
        let envelope = update.envelope.clone();
        let slot = update.slot;
        let trace = update.trace.clone();
        let pending = PendingInstall {
            slot,
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
        for (token, claims) in tokens.iter().zip(&expected) {
            self.check_token(token, claims)?;
        }

        // Second run over the digests the TA computed: must pass and take the same path.
        let now = self.clock.now();
        let config = self.config.clone();
        let state = self.state()?.clone();
        if let InstallState::Trial(_) = state.install {
            return Err(TaError::order(CMD, "another install is pending"));
        }
        for c in &pending.components {
            if pending.sequence_number < state.floor(&c.component_id) {
                return Err(Error::Rollback {
                    sequence: pending.sequence_number,
                    floor: state.floor(&c.component_id),
                }
                .into());
            }
        }
        let authentic = Manifest::authenticate(&envelope, &config.anchors)?;
        let again = plan::verify(
            &authentic,
            &SECTIONS,
            &Self::identity(&state, &config),
            slot,
            now,
            &computed,
        )?;
        if again != trace {
            return Err(TaError::Diverged);
        }
        let reply = Reply::Committed(pending.clone());
        Self::fits(&reply, capacity)?;
        let boot = BootRecord {
            slot,
            sequence_number: pending.sequence_number,
            status: BootStatus::Trial,
            components: s
                .update
                .iter()
                .flat_map(|u| &u.items)
                .filter_map(|item| {
                    item.verity.clone().map(|verity| BootComponent {
                        component_id: item.plan.component_id.clone(),
                        verity,
                    })
                })
                .collect(),
        };
        let record = pending;
        self.change_state(|st| {
            st.install = InstallState::Trial(record);
            st.set_boot_record(boot);
            Ok(())
        })?;
        if let Some(u) = s.update.as_mut() {
            u.committed = true;
        }
        s.committed = true;
        if self.update_owner == Some(id) {
            self.update_owner = None;
        }
        Ok(reply)
    }

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

    fn confirm_update(
        &mut self,
        s: &mut Session,
        component: u32,
        offset: u64,
        chunk: &[u8],
    ) -> Result<Reply> {
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
        stream.update(chunk, None)?;
        s.confirming = Some((index, stream));
        Ok(Reply::Done)
    }

    fn confirm(&mut self, s: &mut Session, capacity: usize) -> Result<Reply> {
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
        for (i, c) in pending.components.iter().enumerate() {
            let verdict = match &s.confirm[i] {
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
            };
            if let Some(e) = verdict {
                s.confirm.clear();
                return Err(e);
            }
        }
        s.confirm.clear();
        let mut reply = Reply::Done;
        self.change_state(|st| {
            let mut floors = Vec::new();
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
            reply = Reply::Confirmed(floors);
            Self::fits(&reply, capacity)
        })?;
        Ok(reply)
    }

    fn rollback(&mut self, id: SessionId, s: &mut Session) -> Result<Reply> {
        if s.update.as_ref().is_some_and(|u| !u.committed) {
            s.update = None;
            if self.update_owner == Some(id) {
                self.update_owner = None;
            }
        }
        s.confirm.clear();
        s.confirming = None;
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
        Ok(Reply::Done)
    }

    /// BOOT_VERIFY: what `slot` may boot — its record, if the trial it belongs to is still
    /// pending (trial) or it was confirmed (good), and no component is below its floor.
    fn boot_verify(&mut self, slot: u64) -> Result<Reply> {
        let state = self.state()?;
        let refuse = |reason: alloc::string::String, category| TaError::NotBootable {
            slot,
            reason,
            category,
        };
        let Some(record) = state.boot_record(slot) else {
            return Err(refuse(
                "the TA has no approval for it (never installed through the TA, or its trial was rolled back)"
                    .into(),
                Category::Policy,
            ));
        };
        if record.status == BootStatus::Trial {
            let pending = matches!(&state.install, InstallState::Trial(p)
                if p.slot == slot && p.sequence_number == record.sequence_number);
            if !pending {
                return Err(refuse(
                    "its trial is no longer pending".into(),
                    Category::Policy,
                ));
            }
        }
        if record.components.is_empty() {
            return Err(refuse(
                "its install has no component with content to verify".into(),
                Category::Policy,
            ));
        }
        for c in &record.components {
            let floor = state.floor(&c.component_id);
            if record.sequence_number < floor {
                return Err(refuse(
                    format!(
                        "its sequence number {} is below the anti-rollback floor {floor}",
                        record.sequence_number
                    ),
                    Category::Rollback,
                ));
            }
        }
        Ok(Reply::Boot(record.clone()))
    }

    fn provision(&mut self, p: &Provisioning) -> Result<Reply> {
        const CMD: CommandId = CommandId::Provision;
        if !self.config.factory {
            return Err(TaError::order(
                CMD,
                "this TA is a production build: provisioning is only available in a factory \
                 build (TA_FACTORY=1)",
            ));
        }
        if self.state()?.provisioned {
            return Err(TaError::order(
                CMD,
                "the device is already provisioned; provisioning is locked",
            ));
        }
        if let Some((key, _)) = &p.kek {
            if key.len() != 16 && key.len() != 32 {
                return Err(Error::InvalidValue {
                    context: "PROVISION",
                    element: "KEK",
                    reason: "must be 16 (A128KW) or 32 (A256KW) bytes",
                }
                .into());
            }
        }
        self.change_state(|st| {
            st.kek = p.kek.as_ref().map(|(key, kid)| Kek {
                key: zeroize::Zeroizing::new(key.clone()),
                kid: kid.clone(),
            });
            st.vendor_id = p.vendor_id.or(st.vendor_id);
            st.class_id = p.class_id.or(st.class_id);
            st.device_id = p.device_id.or(st.device_id);
            st.provisioned = true;
            Ok(())
        })?;
        Ok(Reply::Done)
    }
}

#[cfg(test)]
mod tests;
