//! What every fuzz target shares: the TA's stack, and a CBOR-aware mutator.
//!
//! Each input runs on a thread with the TA's stack (ta/ta.mk: TA_STACK_SIZE), so that
//! recursion which a host's 8 MiB main stack absorbs crashes here as it would in OP-TEE.
//! Byte-level mutations almost never build deep structure in valid CBOR (a seeded run of
//! 1.1 M executions did not find 75 nested arrays in a COSE header); the mutator parses the
//! input as CBOR, including CBOR embedded in byte strings (SUIT and COSE wrap nearly
//! everything in bstrs), mutates the tree — wrapping an item in up to 128 arrays, tags,
//! duplicating, deleting, splicing, interesting integers — and re-encodes it with every
//! length fixed. Half of the mutations stay libFuzzer's own.

#![allow(dead_code)] // each target uses part of it

pub mod cbor;

/// The TA's stack size in bytes (ta/ta.mk: TA_STACK_SIZE).
pub const TA_STACK_SIZE: usize = 49152;

/// Names a file that holds the input being run (`make fuzz` sets it, on tmpfs: written per
/// input, it costs about 10 % of the executions there): a stack overflow on
/// the TA-sized thread kills the process before libFuzzer can save the crashing input (its
/// signal handler has no alternate stack on that thread), so it is written beforehand.
const LAST_INPUT_ENV: &str = "SUIT_FUZZ_LAST_INPUT";

/// Runs `f` over `data` on a thread with the TA's stack; a panic there is a panic here (a
/// crash for libFuzzer), and a stack overflow kills the process.
pub fn on_ta_stack<F: FnOnce() + Send>(data: &[u8], f: F) {
    static LAST_INPUT: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    if let Some(path) = LAST_INPUT.get_or_init(|| std::env::var_os(LAST_INPUT_ENV)) {
        std::fs::write(path, data).expect("write the last input");
    }
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .stack_size(TA_STACK_SIZE)
            .spawn_scoped(s, f)
            .expect("spawn a thread with the TA's stack");
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

/// A structure-aware mutation of `data[..size]`, at most `max_size` bytes, for
/// `libfuzzer_sys::fuzz_mutator!`.
pub fn mutate(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let mut rng = cbor::Rng::new(seed);
    if rng.below(2) == 0 {
        return libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    }
    match cbor::mutate(&data[..size], &mut rng) {
        Some(out) if out.len() <= max_size => {
            data[..out.len()].copy_from_slice(&out);
            out.len()
        }
        _ => libfuzzer_sys::fuzzer_mutate(data, size, max_size),
    }
}

/// [`mutate`] for inputs framed as a 2-byte big-endian length, that many bytes of CBOR, and
/// the rest (the encryption_info target); the length follows the mutated CBOR.
pub fn mutate_framed(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let mut rng = cbor::Rng::new(seed);
    let framed = match &data[..size] {
        [hi, lo, rest @ ..] if rng.below(2) == 0 => {
            let split = (usize::from(*hi) << 8 | usize::from(*lo)).min(rest.len());
            let (info, payload) = rest.split_at(split);
            cbor::mutate(info, &mut rng).and_then(|info| {
                let len = u16::try_from(info.len()).ok()?;
                let mut out = len.to_be_bytes().to_vec();
                out.extend_from_slice(&info);
                out.extend_from_slice(payload);
                Some(out)
            })
        }
        _ => None,
    };
    match framed {
        Some(out) if out.len() <= max_size => {
            data[..out.len()].copy_from_slice(&out);
            out.len()
        }
        _ => libfuzzer_sys::fuzzer_mutate(data, size, max_size),
    }
}
