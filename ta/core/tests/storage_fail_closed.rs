//! The core fails closed on secure-storage errors (issue 11): when its state cannot be read
//! (RPMB unreachable, storage unavailable) GET_INFO is refused with a storage message and no
//! new state is created or written; a new state is created only when the storage answered
//! "no object" AND accepted the write; a failed write leaves nothing cached.

use std::cell::RefCell;
use std::rc::Rc;

use suit_shared::abi::{self, decode_response, CommandId, Reply, Request, StorageKind};
use suit_shared::error::Uuid;
use suit_shared::Category;
use suit_ta_core::{
    ClientIdentity, ClientPolicy, Clock, Config, Param, Rng, Storage, StorageError, Ta,
};

/// One object store whose reads and writes can be made to fail, shared with the test.
#[derive(Default)]
struct Backing {
    object: Option<Vec<u8>>,
    read_fails: bool,
    hidden: bool,
    write_fails: bool,
    writes: usize,
}

#[derive(Clone, Default)]
struct Flaky(Rc<RefCell<Backing>>);

impl Storage for Flaky {
    fn read(&mut self, _: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let b = self.0.borrow();
        if b.read_fails {
            return Err(StorageError("storage not available (0xf0100003)".into()));
        }
        Ok(if b.hidden { None } else { b.object.clone() })
    }
    fn replace(&mut self, _: &str, data: &[u8]) -> Result<(), StorageError> {
        let mut b = self.0.borrow_mut();
        if b.write_fails {
            return Err(StorageError("writing failed (0xf0100003)".into()));
        }
        b.writes += 1;
        b.object = Some(data.to_vec());
        Ok(())
    }
    fn kind(&self) -> StorageKind {
        StorageKind::Rpmb
    }
}

/// A different key on every TA instance if the state were ever regenerated.
struct Counter(u8);

impl Rng for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_add(7);
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

/// A new TA instance (as OP-TEE starts one per first session) on `storage`, seeded `seed`.
fn instance(storage: &Flaky, seed: u8) -> Ta<Flaky, Counter, NoClock> {
    let config = Config {
        anchors: Vec::new(),
        policy: suit_shared::auth::AnchorPolicy::AnyOne,
        vendor_id: Uuid([1; 16]),
        class_id: Uuid([2; 16]),
        max_chunk: 64,
        max_envelope: 64,
        client: ClientPolicy::Any,
        factory: false,
        agreement: suit_ta_core::DeviceCurve::P384,
    };
    Ta::new(config, storage.clone(), Counter(seed), NoClock)
}

/// GET_INFO: the device public key, or the rejection.
fn get_info(ta: &mut Ta<Flaky, Counter, NoClock>) -> Result<Vec<u8>, abi::Rejection> {
    let session = ta.open_session(ClientIdentity::PUBLIC).unwrap();
    let params = [
        Param::MemrefInput(Request::GetInfo.encode()),
        Param::MemrefOutput(4 * abi::MIN_RESPONSE_BUFFER),
        Param::None,
        Param::None,
    ];
    let out = ta
        .invoke(session, CommandId::GetInfo as u32, &params)
        .unwrap();
    ta.close_session(session);
    match decode_response(CommandId::GetInfo, &out.response).unwrap() {
        Ok(Reply::Info(info)) => Ok(info.device_public_key),
        Ok(other) => panic!("GET_INFO answered {other:?}"),
        Err(rejection) => Err(rejection),
    }
}

#[test]
fn unreadable_storage_never_yields_a_new_state() {
    let storage = Flaky::default();
    let key = get_info(&mut instance(&storage, 1)).unwrap();
    let stored = storage.0.borrow().object.clone();
    assert_eq!(storage.0.borrow().writes, 1);

    // The storage fails (RPMB unreachable): refused, with the reason; nothing written.
    storage.0.borrow_mut().read_fails = true;
    let mut ta = instance(&storage, 2);
    let refused = get_info(&mut ta).unwrap_err();
    assert_eq!(refused.category, Category::Resource);
    assert!(
        refused.message.contains("secure storage") && refused.message.contains("0xf0100003"),
        "{refused:?}"
    );
    assert_eq!(storage.0.borrow().writes, 1, "a new state was written");
    assert_eq!(storage.0.borrow().object, stored);

    // Back: the same instance and a new one read the old state, same key.
    storage.0.borrow_mut().read_fails = false;
    assert_eq!(get_info(&mut ta).unwrap(), key);
    assert_eq!(get_info(&mut instance(&storage, 3)).unwrap(), key);
}

#[test]
fn a_state_is_created_only_when_the_storage_takes_it() {
    let storage = Flaky::default();
    let key = get_info(&mut instance(&storage, 1)).unwrap();

    // The storage says "no object" but cannot be written (e.g. a hidden RPMB answering
    // "not found" whose writes fail): refused, and no fresh state lingers in the instance.
    {
        let mut b = storage.0.borrow_mut();
        b.hidden = true;
        b.write_fails = true;
    }
    let mut ta = instance(&storage, 2);
    let refused = get_info(&mut ta).unwrap_err();
    assert_eq!(refused.category, Category::Resource, "{refused:?}");
    {
        let mut b = storage.0.borrow_mut();
        b.hidden = false;
        b.write_fails = false;
    }
    assert_eq!(
        get_info(&mut ta).unwrap(),
        key,
        "the instance kept the fresh state it could not store"
    );
    assert_eq!(storage.0.borrow().writes, 1);
}
