//! Decode + authenticate + process any input: no panic, no unbounded allocation or recursion.
//!
//! Authentication runs for real against the public draft key (so signed vectors from the
//! seed corpus get through it); the processor then also runs on the unauthenticated decode,
//! because random inputs essentially never carry a valid signature.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};

#[path = "common/mod.rs"]
mod common;
use suit_shared::auth::{Authenticated, TrustAnchor};
use suit_shared::digest::SuitDigest;
use suit_shared::envelope::Envelope;
use suit_shared::error::Uuid;
use suit_shared::manifest::{Authentic, Manifest};
use suit_shared::params::ComponentParams;
use suit_shared::processor::{ComponentRef, DeviceIdentity, FetchSource, ImageCheck, Platform, Processor, Section};
use suit_shared::Result;

/// The draft-ietf-suit-manifest Appendix B public key (uncompressed SEC1).
const DRAFT_KEY: [u8; 65] = [
    0x04, 0x84, 0x96, 0x81, 0x1a, 0xae, 0x0b, 0xaa, 0xab, 0xd2, 0x61, 0x57, 0x18, 0x9e, 0xec, 0xda, 0x26, 0xbe,
    0xaa, 0x8b, 0xf1, 0x1b, 0x6f, 0x3f, 0xe6, 0xe2, 0xb5, 0x65, 0x9c, 0x85, 0xdb, 0xc0, 0xad, 0x3b, 0x1f, 0x2a,
    0x4b, 0x6c, 0x09, 0x81, 0x31, 0xc0, 0xa3, 0x6d, 0xac, 0xd1, 0xd7, 0x8b, 0xd3, 0x81, 0xdc, 0xdf, 0xb0, 0x9c,
    0x05, 0x2d, 0xb3, 0x39, 0x91, 0xdb, 0x73, 0x38, 0xb4, 0xa8, 0x96,
];

/// Components in memory; content is a byte string per component.
struct Memory {
    identity: DeviceIdentity,
    contents: Vec<Vec<u8>>,
}

impl Platform for Memory {
    fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }
    fn component_slot(&self, c: ComponentRef<'_>) -> Option<u64> {
        Some(c.index as u64 % 2)
    }
    fn check_image(&mut self, c: ComponentRef<'_>, digest: &SuitDigest<'_>, size: Option<u64>) -> Result<ImageCheck> {
        let data = &self.contents[c.index];
        if size.is_some_and(|s| s != data.len() as u64) {
            return Ok(ImageCheck::SizeMismatch { actual: data.len() as u64 });
        }
        Ok(if digest.matches_data(data) { ImageCheck::Match } else { ImageCheck::DigestMismatch })
    }
    fn check_content(&mut self, c: ComponentRef<'_>, expected: &[u8]) -> Result<bool> {
        Ok(self.contents[c.index] == expected)
    }
    fn fetch(&mut self, c: ComponentRef<'_>, source: FetchSource<'_>, _: &ComponentParams<'_>) -> Result<()> {
        self.contents[c.index] = match source {
            FetchSource::Integrated { data, .. } => data.to_vec(),
            FetchSource::Uri(uri) => uri.as_bytes().to_vec(),
        };
        Ok(())
    }
    fn write(&mut self, c: ComponentRef<'_>, params: &ComponentParams<'_>) -> Result<()> {
        self.contents[c.index] = params.content.unwrap_or_default().to_vec();
        Ok(())
    }
    fn copy(&mut self, c: ComponentRef<'_>, src: ComponentRef<'_>, _: &ComponentParams<'_>) -> Result<()> {
        self.contents[c.index] = self.contents[src.index].clone();
        Ok(())
    }
}

fn run(authentic: &Authentic<'_>) {
    for procedure in [&Section::UPDATE[..], &Section::INVOCATION[..]] {
        let mut device = Memory {
            identity: DeviceIdentity { vendor_id: Uuid([0; 16]), class_id: Uuid([0; 16]), device_id: None },
            contents: vec![Vec::new(); authentic.manifest.component_count()],
        };
        let _ = Processor::new(authentic, &mut device).run(procedure);
    }
}

fn check(data: &[u8]) {
    let anchors = [TrustAnchor::from_sec1(&DRAFT_KEY, None).expect("valid key")];
    if let Ok(authentic) = Manifest::authenticate(data, &anchors) {
        run(&authentic);
    }
    if let Ok(envelope) = Envelope::decode(data) {
        if let Ok(manifest) = Manifest::decode_unauthenticated(&envelope) {
            let authenticated = Authenticated { block: 0, anchor: 0, alg: 0 };
            run(&Authentic { envelope, manifest, authenticated });
        }
    }
}

// Every input on the TA's stack, mutated with knowledge of CBOR (common/mod.rs).
fuzz_target!(|data: &[u8]| common::on_ta_stack(data, || check(data)));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    common::mutate(data, size, max_size, seed)
});
