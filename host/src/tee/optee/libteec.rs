//! libteec's C API (optee-teec-sys) behind safe types, for what the optee-teec crate does not
//! offer: shared memory that lives as long as the session, passed to the TA as partial memory
//! references (TEEC_MEMREF_PARTIAL_*) into it, so that no invoke allocates or registers
//! anything (a temporary memref makes libteec allocate, register, copy and release a buffer
//! on every call).
//!
//! Ownership: a [`Context`] is reference-counted and every [`Session`] and [`SharedMemory`]
//! holds a count, so the context is finalized only after its last session is closed and its
//! last buffer released, whatever order their owners drop them in.

use std::cell::UnsafeCell;
use std::ptr;
use std::rc::Rc;

use optee_teec_sys as raw;

use crate::tee::shm::Region;

/// An initialized TEEC_Context; finalized on drop, which only happens once no session or
/// shared memory refers to it (they hold the `Rc`).
struct ContextInner(UnsafeCell<raw::TEEC_Context>);

impl ContextInner {
    fn as_ptr(&self) -> *mut raw::TEEC_Context {
        self.0.get()
    }
}

impl Drop for ContextInner {
    fn drop(&mut self) {
        // SAFETY: a ContextInner exists only around a context TEEC_InitializeContext
        // initialized; every session and shared memory of it held an `Rc` to it, so they are
        // all closed or released by now, as TEEC_FinalizeContext requires.
        unsafe { raw::TEEC_FinalizeContext(self.0.get_mut()) }
    }
}

/// A connection to the TEE driver (TEEC_Context).
pub struct Context(Rc<ContextInner>);

impl Context {
    /// TEEC_InitializeContext of the default TEE; the GlobalPlatform code on failure.
    pub fn new() -> Result<Self, u32> {
        let mut context = raw::TEEC_Context {
            imp: raw::TEEC_Context__Imp {
                fd: -1,
                reg_mem: false,
                memref_null: false,
            },
        };
        // SAFETY: `context` is a valid, writable TEEC_Context for the call; NULL names the
        // default TEE. The context holds no pointer to itself, so it may move afterwards.
        let code = unsafe { raw::TEEC_InitializeContext(ptr::null(), &mut context) };
        if code != raw::TEEC_SUCCESS {
            return Err(code);
        }
        Ok(Context(Rc::new(ContextInner(UnsafeCell::new(context)))))
    }

    /// TEEC_OpenSession with the TA `uuid` and the login method `login` (TEEC_LOGIN_*); the
    /// GlobalPlatform code on failure.
    pub fn open_session(&self, uuid: &uuid::Uuid, login: u32) -> Result<Session, u32> {
        let (time_low, time_mid, time_hi, clock_seq_and_node) = uuid.as_fields();
        let destination = raw::TEEC_UUID {
            timeLow: time_low,
            timeMid: time_mid,
            timeHiAndVersion: time_hi,
            clockSeqAndNode: *clock_seq_and_node,
        };
        let mut session = raw::TEEC_Session {
            imp: raw::TEEC_Session__Imp {
                ctx: ptr::null_mut(),
                session_id: 0,
            },
        };
        let mut origin = 0;
        // SAFETY: the context is initialized and outlives the session (the Session keeps an
        // `Rc` to it; the session remembers the context's address, which the `Rc` keeps in
        // place); every pointer is valid for the call; no connection data and no operation
        // (both may be NULL).
        let code = unsafe {
            raw::TEEC_OpenSession(
                self.0.as_ptr(),
                &mut session,
                &destination,
                login,
                ptr::null(),
                ptr::null_mut(),
                &mut origin,
            )
        };
        if code != raw::TEEC_SUCCESS {
            return Err(code);
        }
        Ok(Session {
            raw: session,
            context: self.0.clone(),
        })
    }

    /// TEEC_AllocateSharedMemory of `size` bytes (at least 1) that the TA may read and write,
    /// zeroed; the GlobalPlatform code on failure. libteec registers it with the driver once
    /// (TEE_IOC_SHM_REGISTER, or TEE_IOC_SHM_ALLOC without dynamic shared memory).
    pub fn allocate(&self, size: usize) -> Result<SharedMemory, u32> {
        let mut raw = raw::TEEC_SharedMemory {
            buffer: ptr::null_mut(),
            size: size.max(1),
            flags: raw::TEEC_MEM_INPUT | raw::TEEC_MEM_OUTPUT,
            imp: raw::TEEC_SharedMemory__Imp {
                id: -1,
                alloced_size: 0,
                shadow_buffer: ptr::null_mut(),
                registered_fd: -1,
                flags: 0,
            },
        };
        // SAFETY: the context is initialized and outlives the buffer (SharedMemory keeps an
        // `Rc` to it); `raw` is a valid TEEC_SharedMemory for libteec to fill in; it holds no
        // pointer to itself, so it may move afterwards.
        let code = unsafe { raw::TEEC_AllocateSharedMemory(self.0.as_ptr(), &mut raw) };
        if code != raw::TEEC_SUCCESS {
            return Err(code);
        }
        if raw.buffer.is_null() {
            // SAFETY: allocated just above in this context, released once here.
            unsafe { raw::TEEC_ReleaseSharedMemory(&mut raw) };
            return Err(raw::TEEC_ERROR_OUT_OF_MEMORY);
        }
        // SAFETY: libteec allocated `raw.size` writable bytes at `raw.buffer` (a page-aligned
        // heap block, or a mapping of the driver's buffer); zeroing them once makes every later
        // `&[u8]` over them refer to initialized memory.
        unsafe { ptr::write_bytes(raw.buffer.cast::<u8>(), 0, raw.size) };
        Ok(SharedMemory {
            raw,
            context: self.0.clone(),
        })
    }
}

/// An open session (TEEC_Session); closed on drop.
pub struct Session {
    raw: raw::TEEC_Session,
    context: Rc<ContextInner>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the session was opened by TEEC_OpenSession, is closed once here, and its
        // context is still initialized (`self.context`).
        unsafe { raw::TEEC_CloseSession(&mut self.raw) }
    }
}

/// One parameter of an invoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memref {
    /// Not used (TEEC_NONE).
    None,
    /// The TA reads this region (TEEC_MEMREF_PARTIAL_INPUT).
    Input(Region),
    /// The TA writes this region (TEEC_MEMREF_PARTIAL_OUTPUT) and says how much it wrote, or
    /// how much it needs after TEEC_ERROR_SHORT_BUFFER.
    Output(Region),
}

/// What an invoke returned: the GlobalPlatform code and each memref's updated size (0 for
/// unused parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invoked {
    /// TEEC_SUCCESS or the error.
    pub code: u32,
    /// The size field of each parameter after the call.
    pub sizes: [usize; 4],
}

impl Session {
    /// TEEC_InvokeCommand with `params`, every memref a region of `shm`, which must belong to
    /// this session's context. A region outside `shm`, or a buffer of another context, is
    /// refused with TEEC_ERROR_BAD_PARAMETERS before anything reaches the TEE.
    pub fn invoke(
        &mut self,
        command: u32,
        shm: &mut SharedMemory,
        params: &[Memref; 4],
    ) -> Invoked {
        let refused = Invoked {
            code: raw::TEEC_ERROR_BAD_PARAMETERS,
            sizes: [0; 4],
        };
        if !Rc::ptr_eq(&self.context, &shm.context) {
            return refused;
        }
        let len = shm.size();
        let parent: *mut raw::TEEC_SharedMemory = &mut shm.raw;
        let mut types = [raw::TEEC_NONE; 4];
        let mut raw_params = [raw::TEEC_Parameter {
            value: raw::TEEC_Value { a: 0, b: 0 },
        }; 4];
        for (n, param) in params.iter().enumerate() {
            let (kind, region) = match *param {
                Memref::None => continue,
                Memref::Input(region) => (raw::TEEC_MEMREF_PARTIAL_INPUT, region),
                Memref::Output(region) => (raw::TEEC_MEMREF_PARTIAL_OUTPUT, region),
            };
            if region
                .offset
                .checked_add(region.len)
                .is_none_or(|end| end > len)
            {
                return refused;
            }
            types[n] = kind;
            raw_params[n] = raw::TEEC_Parameter {
                memref: raw::TEEC_RegisteredMemoryReference {
                    parent,
                    size: region.len,
                    offset: region.offset,
                },
            };
        }
        let mut operation = raw::TEEC_Operation {
            started: 0,
            paramTypes: raw::TEEC_PARAM_TYPES(types[0], types[1], types[2], types[3]),
            params: raw_params,
            imp: raw::TEEC_Operation__Imp {
                session: ptr::null_mut(),
            },
        };
        let mut origin = 0;
        // SAFETY: the session is open; `operation` is valid for the call. Every memref's
        // parent is `shm`, allocated in this session's context (checked above) and still
        // registered (it is released only on drop); each region lies inside it (checked
        // above). `shm` is exclusively borrowed for the whole call, so no Rust reference to
        // its bytes exists while the TEE reads and writes them, and the TEE touches them only
        // during the call (OP-TEE unmaps a TA's parameters when the command returns).
        let code =
            unsafe { raw::TEEC_InvokeCommand(&mut self.raw, command, &mut operation, &mut origin) };
        let mut sizes = [0; 4];
        for (n, size) in sizes.iter_mut().enumerate() {
            if types[n] != raw::TEEC_NONE {
                // SAFETY: parameter n was written as a memref above, and libteec only updates
                // its size field.
                *size = unsafe { operation.params[n].memref.size };
            }
        }
        Invoked { code, sizes }
    }
}

/// A buffer shared with the TEE for the life of its owner (TEEC_AllocateSharedMemory), passed
/// to invokes as partial memrefs; released on drop.
pub struct SharedMemory {
    raw: raw::TEEC_SharedMemory,
    context: Rc<ContextInner>,
}

impl SharedMemory {
    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.raw.size
    }

    /// Its bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: libteec allocated `size` bytes at `buffer` (non-null, checked at
        // allocation), zeroed since, valid until the release in Drop; the TEE writes them
        // only inside `Session::invoke`, which borrows `self` mutably, so never while this
        // shared borrow lives.
        unsafe { std::slice::from_raw_parts(self.raw.buffer.cast::<u8>(), self.raw.size) }
    }

    /// Its bytes, to fill before an invoke.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; the mutable borrow of `self` makes this the only
        // reference to the bytes while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.raw.buffer.cast::<u8>(), self.raw.size) }
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: allocated by TEEC_AllocateSharedMemory in the context `self.context` keeps
        // initialized, released once here; no invoke uses it any more (they borrow `self`).
        unsafe { raw::TEEC_ReleaseSharedMemory(&mut self.raw) }
    }
}
