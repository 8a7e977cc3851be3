//! The TA: build-time configuration, the client policy, sessions, and the core that runs the
//! commands of the ABI. The commands are cut along DESIGN.md §4's seams:
//!
//! | module | what |
//! |---|---|
//! | [`transport`] | parameter layout, request caps, response encoding, dispatch from the ABI table |
//! | [`session`] | per-session memory: the update in progress, streams, the report's attempt |
//! | [`approval`] | LOAD_MANIFEST, PAYLOAD_UPDATE/FINAL, DECRYPT_FOR_INSTALL |
//! | [`streaming`] | STREAM_UPDATE/FINAL: one pass, every block checked against the manifest's dm-verity tree |
//! | [`commit`] | COMMIT: tokens back, the second run over computed digests, the pending install |
//! | [`trial`] | CONFIRM_UPDATE/CONFIRM, ROLLBACK |
//! | [`info`] | GET_INFO, REPORT, PROVISION, BOOT_VERIFY |
//! | [`anchors`] | UPDATE_ANCHORS: the trust-anchor set rotated by a signed manifest |
//!
//! Persistent state is [`crate::state`]; [`Core`] caches it and replaces it atomically.

mod anchors;
mod approval;
mod commit;
mod info;
mod session;
mod streaming;
mod transport;
mod trial;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use suit_shared::abi::{self, encode_response, CommandId, ReplyBody};
use suit_shared::auth::{AnchorPolicy, TrustAnchor};
use suit_shared::error::Uuid;
use suit_shared::processor::{DeviceIdentity, Section};
use suit_shared::Error;

use crate::error::{Result, TaError};
use crate::platform::{Clock, Rng, Storage};
use crate::state::State;

use session::Session;
pub use session::SessionId;
pub use transport::{Bulk, Output, Param, TeeError, VecBulk};

/// The sections LOAD_MANIFEST and COMMIT run (after the shared sequence).
const SECTIONS: [Section; 2] = [Section::PayloadFetch, Section::Install];

/// Build-time configuration of the TA.
#[derive(Debug, Clone)]
pub struct Config {
    /// Keys that may sign envelopes.
    pub anchors: Vec<TrustAnchor>,
    /// How many of them must sign: part of the built-in anchor set, never chosen by the REE.
    pub policy: AnchorPolicy,
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
    /// The curve of the key-agreement key a new state gets (X25519: draft-ietf-suit-mti's
    /// EdDSA profile); a stored key keeps its own.
    pub agreement: crate::state::DeviceCurve,
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

/// What every command works on besides its session: configuration, platform, the cached
/// persistent state, and which session holds the one update in progress.
struct Core<S: Storage, R: Rng, C: Clock> {
    config: Config,
    storage: S,
    rng: R,
    clock: C,
    state: Option<State>,
    update_owner: Option<SessionId>,
}

/// The open sessions: at most [`MAX_SESSIONS`], so a list searched by id (smaller in the
/// TA than a map).
#[derive(Default)]
struct Sessions(Vec<(SessionId, Session)>);

impl Sessions {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn contains(&self, id: SessionId) -> bool {
        self.0.iter().any(|(open, _)| *open == id)
    }

    #[cfg(test)]
    fn get(&self, id: SessionId) -> Option<&Session> {
        self.0.iter().find(|(open, _)| *open == id).map(|(_, s)| s)
    }

    fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.0
            .iter_mut()
            .find(|(open, _)| *open == id)
            .map(|(_, s)| s)
    }

    /// Adds a session under an id that no open session has.
    fn insert(&mut self, id: SessionId, session: Session) {
        debug_assert!(!self.contains(id));
        self.0.push((id, session));
    }

    fn remove(&mut self, id: SessionId) {
        self.0.retain(|(open, _)| *open != id);
    }
}

/// The trusted application core.
pub struct Ta<S: Storage, R: Rng, C: Clock> {
    core: Core<S, R, C>,
    sessions: Sessions,
    next_session: SessionId,
}

impl<S: Storage, R: Rng, C: Clock> Ta<S, R, C> {
    /// A TA over the given platform. State is loaded (or created) on first use.
    pub fn new(config: Config, storage: S, rng: R, clock: C) -> Self {
        Ta {
            core: Core {
                config,
                storage,
                rng,
                clock,
                state: None,
                update_owner: None,
            },
            sessions: Sessions::default(),
            next_session: 1,
        }
    }

    /// Gives back the storage, e.g. to start a new TA instance on it (a restart).
    pub fn into_storage(self) -> S {
        self.core.storage
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
        while self.sessions.contains(id) {
            id = id.wrapping_add(1).max(1);
        }
        self.next_session = id.wrapping_add(1).max(1);
        let mut session = Session::new(self.core.config.client.allows(&client));
        self.core.rng.fill(&mut session.nonce);
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
            abi::PARAM_DATA_IN
                if matches!(command, CommandId::LoadManifest | CommandId::UpdateAnchors) =>
            {
                self.core.config.max_envelope
            }
            abi::PARAM_DATA_IN if command == CommandId::StreamUpdate => {
                self.core.config.max_chunk + abi::STREAM_HASH_ROOM
            }
            abi::PARAM_DATA_IN if command.data_in() => self.core.config.max_chunk,
            _ => 0,
        }
    }

    /// Closes a session, dropping any update it held.
    pub fn close_session(&mut self, id: SessionId) {
        self.sessions.remove(id);
        self.core.release_update(id);
    }
}

impl<S: Storage, R: Rng, C: Clock> Core<S, R, C> {
    /// The persistent state, loaded (or created) on first use, beside the configuration.
    fn loaded(&mut self) -> Result<(&State, &Config)> {
        let state = match &mut self.state {
            Some(state) => state,
            cached @ None => cached.insert(State::load_or_create(
                &mut self.storage,
                &mut self.rng,
                self.config.agreement,
            )?),
        };
        Ok((state, &self.config))
    }

    /// The persistent state, loaded (or created) on first use.
    fn state(&mut self) -> Result<&State> {
        self.loaded().map(|(state, _)| state)
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

    /// The trust anchors in force and their policy: the last anchor update's, else the
    /// built-in set.
    fn anchors<'a>(state: &'a State, config: &'a Config) -> (&'a [TrustAnchor], AnchorPolicy) {
        match &state.anchors {
            Some(set) => (&set.anchors, set.policy),
            None => (&config.anchors, config.policy),
        }
    }

    /// The device identity in force: provisioned overrides, else the build's.
    fn identity(state: &State, config: &Config) -> DeviceIdentity {
        DeviceIdentity {
            vendor_id: state.vendor_id.unwrap_or(config.vendor_id),
            class_id: state.class_id.unwrap_or(config.class_id),
            device_id: state.device_id,
        }
    }

    /// Session `id` no longer holds the update in progress (if it did).
    fn release_update(&mut self, id: SessionId) {
        if self.update_owner == Some(id) {
            self.update_owner = None;
        }
    }
}

/// Fails unless `body`'s response encodes within `capacity` (checked before any state
/// changes, so that a reply too large for the client's buffer never follows a change it
/// reports).
fn fits<T: ReplyBody + Clone>(body: &T, capacity: usize) -> Result<()> {
    let size = encode_response(&Ok(body.clone().into_reply())).len();
    if size > capacity {
        return Err(TaError::TooLarge {
            what: "the response",
            size,
            limit: capacity,
        });
    }
    Ok(())
}

fn offset_error(command: CommandId, component: u32, offset: u64, received: u64) -> TaError {
    TaError::order(
        command,
        format!(
            "a chunk at offset {offset} of component {component}, but the TA has received \
             {received} bytes of it: resume at offset {received} or restart at 0"
        ),
    )
}

/// Why a token did not verify, without the wording of manifest authentication.
pub(crate) fn token_error(e: Error) -> TaError {
    match e {
        Error::NotAuthenticated(reason) => TaError::Token(reason),
        Error::InvalidAuthenticationBlock { reason, .. } => TaError::Token(String::from(reason)),
        other => TaError::TokenInvalid(other),
    }
}

#[cfg(test)]
mod tests;
