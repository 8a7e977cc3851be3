//! Decode any input as SUIT_Encryption_Info, recover the content key with a fixed set of device
//! keys, and stream the rest of the input through the decryptor in uneven chunks: no panic, no
//! allocation that grows with the payload, and a tag check that never accepts by accident.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};

#[path = "common/mod.rs"]
mod common;
use suit_shared::crypto::Curve;
use suit_shared::encryption::{unwrap_cek, AesKey, Decryptor, EncryptionInfo, RecipientKey};

fn check(data: &[u8]) {
    let [hi, lo, rest @ ..] = data else { return };
    let split = (usize::from(*hi) << 8 | usize::from(*lo)).min(rest.len());
    let (info, payload) = rest.split_at(split);
    let Ok(info) = EncryptionInfo::decode(info) else { return };
    let keys = [
        RecipientKey::Kek { kid: None, key: AesKey::from_slice(&[b'a'; 16]).unwrap() },
        RecipientKey::Kek { kid: Some(b"kid-32".to_vec()), key: AesKey::from_slice(&[b'b'; 32]).unwrap() },
        RecipientKey::ecdh(Curve::P256, &[1; 32], None).unwrap(),
        RecipientKey::ecdh(Curve::P384, &[1; 48], None).unwrap(),
        RecipientKey::Direct { kid: None, key: AesKey::from_slice(&[b'c'; 16]).unwrap() },
    ];
    // Random inputs rarely unwrap: decrypt with a fixed content key of the right length then.
    let cek = unwrap_cek(&info, &keys)
        .unwrap_or_else(|_| AesKey::from_slice(&[7; 32][..info.content_alg.key_len()]).unwrap());
    let Ok(mut decryptor) = Decryptor::new(&info, cek) else { return };
    let mut out = [0u8; 64];
    let mut rest = payload;
    while let [n, tail @ ..] = rest {
        let take = usize::from(*n % 64).min(tail.len());
        if decryptor.update(&tail[..take], &mut out).is_err() {
            return;
        }
        rest = &tail[take..];
    }
    let _ = decryptor.finalize();
}

// Every input on the TA's stack, mutated with knowledge of CBOR (common/mod.rs).
fuzz_target!(|data: &[u8]| common::on_ta_stack(data, || check(data)));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    common::mutate_framed(data, size, max_size, seed)
});
