//! The platform-independent core of the SUIT trusted application: sessions, the ABI commands
//! of [`suit_shared::abi`], persistent state, the device key and approval tokens. It does no
//! I/O of its own: the OP-TEE glue (ta/src) and the host simulator feed it invocations and
//! give it secure storage, randomness and time through the traits of [`platform`].
//!
//! # State machine
//!
//! Two levels of state. Per **session** (in memory, lost when the session closes):
//!
//! ```text
//!            LOAD_MANIFEST                 PAYLOAD_UPDATE*/FINAL            COMMIT
//!  Idle ─────────────────────► Loaded ───────────────────► all Approved ──────────► Committed
//!   ▲  (authentic, applicable,  (plan)    per item: Pending → Streaming   (re-run over  (install
//!   │   fresh; one session at              → Approved (token)              computed      recorded)
//!   │   a time holds an update)            encrypted items additionally:    digests,
//!   │                                      DECRYPT_FOR_INSTALL* → Installed same path)
//!   └──────────── ABORT / session close (drops the update; nothing persistent changes)
//! ```
//!
//! Persistently (one secure-storage object, see [`state`]), the **install**:
//!
//! ```text
//!          COMMIT                      CONFIRM_UPDATE* + CONFIRM (slot digests match)
//!  Idle ────────────► Trial(pending) ──────────────────────────────────────────────► Idle, last = Confirmed,
//!   ▲                    │                                                             floors raised to the
//!   │                    │ ROLLBACK                                                    manifest's sequence number
//!   └────────────────────┴──► Idle, last = RolledBack, floors unchanged
//! ```
//!
//! "Trial" is the committed install while the device tries the new slot: CONFIRM is refused
//! in the session that committed, also after an ABORT there (the trial boot runs in a new
//! session), and whenever no install is pending (ROLLBACK ends the trial for good). LOAD_MANIFEST is refused while an install is pending, so floors are
//! only ever raised by the install they were checked against. A token is only accepted back
//! (DECRYPT_FOR_INSTALL, COMMIT) when it verifies with the device key and states exactly what
//! this session approved, including the session's random nonce. Every rejection leaves the
//! persistent state unchanged.
//!
//! # Who may change state
//!
//! Every session records the client identity the TEE vouches for (GlobalPlatform
//! `gpd.client.identity`: login method and UUID; for a Linux user the kernel derives the UUID
//! from the effective uid). Only the identity of [`ClientPolicy`] (build-time `TA_CLIENT`,
//! default: Linux user root) may use the commands that change anything — LOAD_MANIFEST and
//! everything after it, ROLLBACK, ABORT, PROVISION; GET_INFO and REPORT are open to every
//! client. PROVISION additionally needs a factory build ([`Config::factory`]) and works once.
//!
//! Tokens: [`suit_shared::token`]. Running a manifest before its payloads exist: [`plan`].
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod crypto;
pub mod error;
pub mod plan;
pub mod platform;
pub mod state;
pub mod stream;
mod ta;

pub use error::{Result, TaError};
pub use platform::{Clock, Rng, Storage, StorageError};
pub use state::DeviceCurve;
pub use ta::{
    Bulk, ClientIdentity, ClientPolicy, Config, Output, Param, SessionId, Ta, TeeError, VecBulk,
    MAX_SESSIONS,
};
