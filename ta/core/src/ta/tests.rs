//! Session bookkeeping of the core (item 8 of issue 9): ids never collide with a live session.

use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::platform::StorageError;

struct NoStorage;

impl Storage for NoStorage {
    fn read(&mut self, _: &str) -> core::result::Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }
    fn replace(&mut self, _: &str, _: &[u8]) -> core::result::Result<(), StorageError> {
        Err(StorageError(String::from("read-only test storage")))
    }
    fn kind(&self) -> abi::StorageKind {
        abi::StorageKind::Simulator
    }
}

struct Counter(u8);

impl Rng for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
    }
}

struct NoClock;

impl Clock for NoClock {
    fn now(&self) -> Option<u64> {
        None
    }
}

fn ta() -> Ta<NoStorage, Counter, NoClock> {
    let config = Config {
        anchors: Vec::new(),
        policy: suit_shared::auth::AnchorPolicy::AnyOne,
        vendor_id: Uuid([1; 16]),
        class_id: Uuid([2; 16]),
        max_chunk: 64,
        max_envelope: 64,
        client: ClientPolicy::Any,
        factory: false,
        agreement: crate::DeviceCurve::P384,
    };
    Ta::new(config, NoStorage, Counter(0), NoClock)
}

#[test]
fn session_ids_skip_live_sessions_when_they_wrap() {
    let mut ta = ta();
    let first = ta.open_session(ClientIdentity::PUBLIC).unwrap();
    let first_nonce = ta.sessions.get(first).unwrap().nonce;
    // 2^32 opens later the counter is about to wrap.
    ta.next_session = u32::MAX;
    let last = ta.open_session(ClientIdentity::PUBLIC).unwrap();
    let wrapped = ta.open_session(ClientIdentity::PUBLIC).unwrap();
    assert_eq!(last, u32::MAX);
    assert_ne!(wrapped, first, "a new session took over a live one");
    assert_ne!(wrapped, 0);
    assert_eq!(ta.sessions.len(), 3);
    assert_eq!(ta.sessions.get(first).unwrap().nonce, first_nonce);
    // Once the first session closed, its id may be used again.
    ta.close_session(first);
    ta.next_session = first;
    assert_eq!(ta.open_session(ClientIdentity::PUBLIC).unwrap(), first);
}

#[test]
fn sessions_are_bounded() {
    let mut ta = ta();
    let ids: Vec<SessionId> = (0..MAX_SESSIONS)
        .map(|_| ta.open_session(ClientIdentity::PUBLIC).unwrap())
        .collect();
    assert_eq!(ta.open_session(ClientIdentity::PUBLIC), Err(TeeError::Busy));
    ta.close_session(ids[3]);
    ta.open_session(ClientIdentity::PUBLIC).unwrap();
}
