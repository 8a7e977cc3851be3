//! The simulator backend: the TA core (`suit-ta-core`) running in-process, its "secure
//! storage" a plain directory. Every flow of the real TA can be exercised without QEMU.
//!
//! **This is not a TEE.** The device key, the KEK and the anti-rollback floors are ordinary
//! files any local user with access to the directory can read, copy or replace; creating a
//! simulator prints a loud warning saying so.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use suit_shared::abi::{self, CommandId, StorageKind};
use suit_shared::auth::{AnchorPolicy, TrustAnchor};
use suit_shared::error::Uuid;
pub use suit_ta_core::DeviceCurve;
use suit_ta_core::{
    Bulk, ClientIdentity, ClientPolicy, Clock, Config, Output, Param, Rng, SessionId, Storage,
    StorageError, Ta, VecBulk,
};

use super::{Backend, RawOutput, Tee, TeeError};
use crate::common::{class_uuid, vendor_uuid};

/// Vendor name of the development identity (vendor id = UUIDv5(DNS, name)), as `make ta`.
pub const DEFAULT_VENDOR: &str = "example.com";
/// Class name of the development identity (class id = UUIDv5(vendor id, name)), as `make ta`.
pub const DEFAULT_CLASS: &str = "qemu-armv8a";
/// The largest chunk the simulator accepts (the ABI's limit).
pub const MAX_CHUNK: usize = abi::MAX_CHUNK_LIMIT;
/// The largest envelope the simulator accepts.
pub const MAX_ENVELOPE: usize = 256 * 1024;

/// The text printed on stderr whenever a simulator is created.
pub const WARNING: &str = "\
################################################################################
# WARNING: TEE SIMULATOR IN USE — THIS IS NOT A TEE.                            #
# The SUIT TA core runs inside this process; its device key, KEK and            #
# anti-rollback floors are plain files. Use it for development and tests only.  #
################################################################################";

/// How to build a simulated TA.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Directory holding the state object (created if missing).
    pub state_dir: PathBuf,
    /// Keys that may sign envelopes.
    pub trust_anchors: Vec<TrustAnchor>,
    /// How many of them must sign ([`AnchorPolicy::AnyOne`] by default).
    pub anchor_policy: AnchorPolicy,
    /// Vendor id.
    pub vendor_id: Uuid,
    /// Class id.
    pub class_id: Uuid,
    /// Largest chunk.
    pub max_chunk: usize,
    /// Largest envelope.
    pub max_envelope: usize,
    /// Which client may change state ([`ClientPolicy::Any`] by default: the simulator runs
    /// inside its one client's process).
    pub client: ClientPolicy,
    /// Whether PROVISION is available (true by default: the simulator is a development
    /// device, like a TA built with TA_FACTORY=1).
    pub factory: bool,
    /// The curve of a new state's key-agreement key (P-384 by default; X25519 like a TA
    /// built with TA_AGREEMENT=x25519).
    pub agreement: DeviceCurve,
}

impl SimulatorConfig {
    /// The development identity ([`DEFAULT_VENDOR`], [`DEFAULT_CLASS`]) and limits.
    pub fn new(state_dir: impl Into<PathBuf>, trust_anchors: Vec<TrustAnchor>) -> Self {
        let vendor_id = vendor_uuid(DEFAULT_VENDOR);
        SimulatorConfig {
            state_dir: state_dir.into(),
            trust_anchors,
            anchor_policy: AnchorPolicy::AnyOne,
            vendor_id,
            class_id: class_uuid(vendor_id, DEFAULT_CLASS),
            max_chunk: MAX_CHUNK,
            max_envelope: MAX_ENVELOPE,
            client: ClientPolicy::Any,
            factory: true,
            agreement: DeviceCurve::P384,
        }
    }
}

/// Objects as files in a directory; replaced by write, fsync, rename, fsync of the directory.
#[derive(Debug)]
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    /// Storage in `dir` (created if missing).
    pub fn new(dir: &Path) -> Result<Self, TeeError> {
        fs::create_dir_all(dir).map_err(|e| {
            TeeError::Backend(format!("simulator state directory {}: {e}", dir.display()))
        })?;
        Ok(DirStorage {
            dir: dir.to_path_buf(),
        })
    }

    /// The file behind an object.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Storage for DirStorage {
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError(format!("reading {name}: {e}"))),
        }
    }

    fn replace(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let err = |e: std::io::Error| StorageError(format!("writing {name}: {e}"));
        let tmp = self.path(&format!("{name}.tmp"));
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(data).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, self.path(name)).map_err(err)?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)
    }

    fn kind(&self) -> StorageKind {
        StorageKind::Simulator
    }
}

/// The operating system's random source.
#[derive(Debug, Default)]
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&mut self, buf: &mut [u8]) {
        // Without randomness no key or nonce can be made; there is nothing sensible to go on with.
        if let Err(e) = getrandom::fill(buf) {
            panic!("the operating system's random source failed: {e}");
        }
    }
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Option<u64> {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    }
}

type CoreTa = Ta<DirStorage, OsRng, SystemClock>;

/// A simulated TA instance; sessions opened on it share its state like sessions of a
/// single-instance TA in OP-TEE.
#[derive(Clone)]
pub struct SimulatedTa {
    ta: Arc<Mutex<CoreTa>>,
}

impl SimulatedTa {
    /// A TA over the state in `config.state_dir`. Prints [`WARNING`] on stderr.
    pub fn new(config: SimulatorConfig) -> Result<Self, TeeError> {
        eprintln!("{WARNING}");
        eprintln!(
            "suit: simulated TA state in {} (plain files)",
            config.state_dir.display()
        );
        let storage = DirStorage::new(&config.state_dir)?;
        let core = Config {
            anchors: config.trust_anchors,
            policy: config.anchor_policy,
            vendor_id: config.vendor_id,
            class_id: config.class_id,
            max_chunk: config.max_chunk.min(abi::MAX_CHUNK_LIMIT),
            max_envelope: config.max_envelope,
            client: config.client,
            factory: config.factory,
            agreement: config.agreement,
        };
        Ok(SimulatedTa {
            ta: Arc::new(Mutex::new(Ta::new(core, storage, OsRng, SystemClock))),
        })
    }

    /// Opens a session as a public client (no identity).
    ///
    /// # Panics
    ///
    /// When [`suit_ta_core::MAX_SESSIONS`] sessions are open (use
    /// [`SimulatedTa::open_session_as`] to handle that).
    pub fn open_session(&self) -> SimulatorSession {
        match self.open_session_as(ClientIdentity::PUBLIC) {
            Ok(session) => session,
            Err(e) => panic!("simulator: cannot open a session: {e}"),
        }
    }

    /// Opens a session as `client`, as if the TEE vouched for that identity.
    pub fn open_session_as(&self, client: ClientIdentity) -> Result<SimulatorSession, TeeError> {
        let id = lock(&self.ta)
            .open_session(client)
            .map_err(|e| TeeError::from_code("open session", e.code()))?;
        Ok(SimulatorSession {
            ta: self.ta.clone(),
            id,
        })
    }
}

fn lock(ta: &Mutex<CoreTa>) -> MutexGuard<'_, CoreTa> {
    // A panic while holding the lock would be a bug in the core; the state it guards is only
    // ever changed through complete, atomic storage writes, so go on with it.
    ta.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One session of a [`SimulatedTa`]; closed on drop.
pub struct SimulatorSession {
    ta: Arc<Mutex<CoreTa>>,
    id: SessionId,
}

impl SimulatorSession {
    /// Opens a simulated TA on `config` and a session on it.
    pub fn connect(config: SimulatorConfig) -> Result<Self, TeeError> {
        SimulatedTa::new(config)?.open_session_as(ClientIdentity::PUBLIC)
    }

    /// A raw invoke with arbitrary parameters, exactly as the TA glue passes them to the core
    /// (for tests of the transport checks).
    pub fn invoke_params(
        &mut self,
        command: u32,
        params: &[Param; 4],
    ) -> Result<Output, suit_ta_core::TeeError> {
        lock(&self.ta).invoke(self.id, command, params)
    }

    /// A raw invoke whose bulk data in and out stay in `bulk`, as the TA glue passes OP-TEE's
    /// shared memory to the core (parameter 2 is a [`Param::MemrefShared`]).
    pub fn invoke_bulk(
        &mut self,
        command: u32,
        params: &[Param; 4],
        bulk: &mut dyn Bulk,
    ) -> Result<Vec<u8>, suit_ta_core::TeeError> {
        lock(&self.ta).invoke_bulk(self.id, command, params, bulk)
    }
}

impl Drop for SimulatorSession {
    fn drop(&mut self) {
        lock(&self.ta).close_session(self.id);
    }
}

impl Tee for SimulatorSession {
    fn backend(&self) -> Backend {
        Backend::Simulator
    }

    fn invoke(
        &mut self,
        command: CommandId,
        request: &[u8],
        data_in: Option<&[u8]>,
        response_capacity: usize,
        data_out_capacity: Option<usize>,
    ) -> Result<RawOutput, TeeError> {
        // The bulk data stays where the caller has it, as in OP-TEE's shared memory.
        let params = [
            Param::MemrefInput(request.to_vec()),
            Param::MemrefOutput(response_capacity),
            data_in.map_or(Param::None, |d| Param::MemrefShared(d.len())),
            data_out_capacity.map_or(Param::None, Param::MemrefOutput),
        ];
        let mut bulk = VecBulk::new(data_in.unwrap_or_default(), data_out_capacity.unwrap_or(0));
        match self.invoke_bulk(command as u32, &params, &mut bulk) {
            Ok(response) => Ok(RawOutput {
                response,
                data: bulk.into_output(),
            }),
            Err(e) => Err(TeeError::Tee {
                command: command.name(),
                code: e.code(),
                message: format!("{} ({e})", abi::tee::message(e.code())),
            }),
        }
    }
}
