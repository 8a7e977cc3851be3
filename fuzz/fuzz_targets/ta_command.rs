//! The TA's command entry (the simulator's core) driven by arbitrary sequences of invokes: no
//! panic, and every answer is a transport error or a well-formed response of the ABI.
//!
//! The input is a little program. Each step starts with an opcode byte; the operations mix
//! raw invokes (any command id, any parameter types, any request bytes) with well-formed
//! requests that carry fuzzer bytes, a validly signed envelope (so that the state machine
//! behind LOAD_MANIFEST is reached), the tokens the TA handed out, session churn, TA restarts
//! and corruption of the stored state.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::{fuzz_mutator, fuzz_target};

#[path = "common/mod.rs"]
mod common;
use suit_shared::abi::{self, CommandId, Provisioning, Request, SealedKek, StorageKind};
use suit_shared::auth::{AnchorPolicy, TrustAnchor};
use suit_shared::author::{build_envelope, encode_manifest, sign_envelope, SigningKey};
use suit_shared::command::{Command, CommandSequence, Condition, Directive, ReportingPolicy};
use suit_shared::digest::{DigestAlg, SuitDigest};
use suit_shared::error::Uuid;
use suit_shared::component::ComponentId;
use suit_shared::manifest::{Manifest, Severable};
use suit_shared::params::{Parameter, VendorId};
use suit_ta_core::{
    ClientIdentity, ClientPolicy, Clock, Config, Param, Rng, SessionId, Storage, StorageError, Ta,
    TeeError,
};

const VENDOR: Uuid = Uuid([1; 16]);
const CLASS: Uuid = Uuid([2; 16]);
const IMAGE: &[u8] = b"fuzzed firmware image";

#[derive(Default)]
struct Memory(BTreeMap<String, Vec<u8>>);

impl Storage for Memory {
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.get(name).cloned())
    }
    fn replace(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        self.0.insert(name.to_string(), data.to_vec());
        Ok(())
    }
    fn kind(&self) -> StorageKind {
        StorageKind::Simulator
    }
}

/// Deterministic randomness (reproducible crashes).
struct Counter(u64);
impl Rng for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 33) as u8;
        }
    }
}

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> Option<u64> {
        Some(1_800_000_000)
    }
}

fn vendor_key() -> &'static p384::ecdsa::SigningKey {
    static KEY: OnceLock<p384::ecdsa::SigningKey> = OnceLock::new();
    KEY.get_or_init(|| p384::ecdsa::SigningKey::from_slice(&[7; 48]).expect("valid scalar"))
}

/// Signed envelopes with sequence numbers 1..=3 installing IMAGE into component "fw".
fn envelopes() -> &'static [Vec<u8>] {
    static ENVELOPES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ENVELOPES.get_or_init(|| {
        let digest = DigestAlg::Sha256.digest(IMAGE);
        let rp = ReportingPolicy(0);
        (1..=3)
            .map(|seq| {
                let manifest = Manifest {
                    sequence_number: seq,
                    components: vec![ComponentId::new([b"fw"])],
                    shared_sequence: Some(CommandSequence {
                        commands: vec![
                            Command::OverrideParameters(vec![
                                Parameter::VendorId(VendorId::Uuid(VENDOR)),
                                Parameter::ClassId(CLASS),
                            ]),
                            Command::Condition(Condition::VendorId, rp),
                            Command::Condition(Condition::ClassId, rp),
                        ],
                    }),
                    reference_uri: None,
                    manifest_component_id: None,
                    set_version: None,
                    validate: None,
                    load: None,
                    invoke: None,
                    uninstall: None,
                    payload_fetch: Severable::Absent,
                    install: Severable::Present {
                        value: CommandSequence {
                            commands: vec![
                                Command::OverrideParameters(vec![
                                    Parameter::Uri("http://example.com/fw"),
                                    Parameter::ImageDigest(SuitDigest {
                                        alg: DigestAlg::Sha256,
                                        bytes: digest.as_bytes(),
                                    }),
                                    Parameter::ImageSize(IMAGE.len() as u64),
                                ]),
                                Command::Directive(Directive::Fetch, rp),
                                Command::Condition(Condition::ImageMatch, rp),
                            ],
                        },
                        severed: false,
                    },
                    candidate_verification: Severable::Absent,
                    text: Severable::Absent,
                    coswid: Severable::Absent,
                };
                let encoded = encode_manifest(&manifest, DigestAlg::Sha256);
                let unsigned = build_envelope(&encoded, &[], DigestAlg::Sha256);
                let key = SigningKey::P384(vendor_key().clone());
                sign_envelope(&unsigned, &key, key.default_alg(), None).expect("signing works")
            })
            .collect()
    })
}

type Core = Ta<Memory, Counter, Fixed>;

fn new_ta(storage: Memory) -> Core {
    let config = Config {
        anchors: vec![TrustAnchor::from_sec1(
            vendor_key().verifying_key().to_sec1_point(false).as_bytes(),
            None,
        )
        .expect("the vendor key is a P-384 point")],
        policy: AnchorPolicy::AnyOne,
        vendor_id: VENDOR,
        class_id: CLASS,
        max_chunk: 64,
        max_envelope: 4096,
        client: ClientPolicy::Any,
        factory: true,
        agreement: suit_ta_core::DeviceCurve::P384,
    };
    Ta::new(config, storage, Counter(1), Fixed)
}

/// Reads the fuzz program.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte().unwrap_or(0)).min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b
    }
}

struct World {
    ta: Core,
    sessions: Vec<SessionId>,
    tokens: Vec<Vec<u8>>,
}

impl World {
    fn session(&mut self, selector: u8) -> SessionId {
        if self.sessions.is_empty() {
            if let Ok(id) = self.ta.open_session(ClientIdentity::PUBLIC) {
                self.sessions.push(id);
            }
        }
        if self.sessions.is_empty() {
            return 0;
        }
        self.sessions[usize::from(selector) % self.sessions.len()]
    }

    /// A well-formed invoke of `req`; checks that the answer follows the ABI.
    fn call(&mut self, session: SessionId, req: &Request, data: &[u8]) {
        let command = req.command();
        let request = req.encode();
        // A typed request can still exceed what its command accepts (item 7 of the hardening
        // issue): then, and only then, the TA refuses it at the transport level.
        let oversized = request.len() > self.ta.input_limit(command as u32, abi::PARAM_REQUEST)
            || (command.data_in()
                && data.len() > self.ta.input_limit(command as u32, abi::PARAM_DATA_IN));
        let params = [
            Param::MemrefInput(request),
            Param::MemrefOutput(abi::MIN_RESPONSE_BUFFER),
            if command.data_in() {
                Param::MemrefInput(data.to_vec())
            } else {
                Param::None
            },
            if command.data_out() {
                Param::MemrefOutput(data.len() + abi::DECRYPT_OUTPUT_SLACK)
            } else {
                Param::None
            },
        ];
        let out = match self.ta.invoke(session, command as u32, &params) {
            Err(TeeError::ExcessData { .. }) if oversized => return,
            out => out.expect("a well-formed invoke is never a transport error"),
        };
        let reply =
            abi::decode_response(command, &out.response).expect("the response follows the ABI");
        if let Ok(abi::Reply::Approval(a)) = reply {
            self.tokens.push(a.token);
        }
    }
}

fn param(kind: u8, input: &mut Input<'_>) -> Param {
    match kind % 6 {
        0 => Param::None,
        1 => Param::MemrefInput(input.bytes().to_vec()),
        2 => Param::MemrefOutput(usize::from(input.byte().unwrap_or(0)) * 128),
        3 => Param::ValueInput(1, 2),
        4 => Param::ValueOutput,
        _ => Param::MemrefInout(input.bytes().to_vec()),
    }
}

fn check(data: &[u8]) {
    let mut input = Input(data);
    let mut w = World {
        ta: new_ta(Memory::default()),
        sessions: Vec::new(),
        tokens: Vec::new(),
    };
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 64 {
            break;
        }
        let sel = input.byte().unwrap_or(0);
        let s = w.session(sel);
        let component = u32::from(sel % 3);
        // Mostly offset 0 (a fresh stream); sometimes an arbitrary one.
        let offset = if sel & 0x20 != 0 {
            u64::from(input.byte().unwrap_or(0))
        } else {
            0
        };
        let token = |w: &World, i: u8| w.tokens.get(usize::from(i)).cloned().unwrap_or_default();
        match op % 16 {
            0 => {
                // Raw invoke: any command, parameter types and bytes.
                let cmd = u32::from(input.byte().unwrap_or(0) % 14);
                let kinds = input.byte().unwrap_or(0);
                let params = [
                    param(kinds, &mut input),
                    param(kinds >> 2, &mut input),
                    param(kinds >> 4, &mut input),
                    param(kinds >> 6, &mut input),
                ];
                if let Ok(out) = w.ta.invoke(s, cmd, &params) {
                    let command = CommandId::from_u32(cmd).expect("only known commands succeed");
                    let _reply = abi::decode_response(command, &out.response)
                        .expect("the response follows the ABI");
                }
            }
            1 => {
                let env = &envelopes()[usize::from(sel) % 3].clone();
                w.call(
                    s,
                    &Request::LoadManifest {
                        target_slot: u64::from(sel % 2),
                        nonce: (sel & 4 == 4).then(|| vec![sel; 8]),
                        facts: (sel & 8 == 8).then_some(abi::DeviceFacts {
                            battery_mwh: (sel & 16 == 16).then_some(u64::from(sel)),
                            authorized: sel & 32 == 0,
                        }),
                    },
                    env,
                );
            }
            2 => w.call(
                s,
                &Request::LoadManifest {
                    target_slot: 0,
                    nonce: None,
                    facts: None,
                },
                input.bytes(),
            ),
            3 => {
                let chunk = if sel & 0x80 != 0 {
                    IMAGE
                } else {
                    input.bytes()
                };
                w.call(s, &Request::PayloadUpdate { component, offset }, chunk)
            }
            4 => w.call(s, &Request::PayloadFinal { component }, &[]),
            5 => {
                let t = if sel & 0x40 != 0 {
                    input.bytes().to_vec()
                } else {
                    token(&w, sel >> 4)
                };
                w.call(
                    s,
                    &Request::DecryptForInstall {
                        component,
                        token: t,
                        offset,
                        last: sel & 1 == 1,
                    },
                    input.bytes(),
                )
            }
            6 => {
                let mut tokens = vec![token(&w, sel >> 4)];
                if sel & 0x08 != 0 {
                    tokens.push(input.bytes().to_vec());
                }
                w.call(s, &Request::Commit { tokens }, &[])
            }
            7 => {
                let chunk = if sel & 0x80 != 0 {
                    IMAGE
                } else {
                    input.bytes()
                };
                w.call(s, &Request::ConfirmUpdate { component, offset }, chunk)
            }
            8 => w.call(s, &Request::Confirm, &[]),
            9 => w.call(s, &Request::Rollback, &[]),
            10 => w.call(s, &Request::Abort, &[]),
            11 => {
                let sealed = input.bytes().to_vec();
                let p = Provisioning {
                    kek: (sel & 1 == 1).then(|| SealedKek {
                        sealed,
                        kid: b"k".to_vec(),
                    }),
                    vendor_id: (sel & 2 == 2).then_some(Uuid([sel; 16])),
                    class_id: None,
                    device_id: (sel & 4 == 4).then_some(Uuid([3; 16])),
                };
                w.call(s, &Request::Provision(p), &[])
            }
            12 => {
                if let Ok(id) = w.ta.open_session(ClientIdentity::PUBLIC) {
                    w.sessions.push(id);
                }
            }
            13 => {
                if !w.sessions.is_empty() {
                    let id = w.sessions.remove(usize::from(sel) % w.sessions.len());
                    w.ta.close_session(id);
                }
            }
            14 => {
                // Restart the TA on the same storage, possibly corrupting a byte of its state.
                let old = std::mem::replace(&mut w.ta, new_ta(Memory::default()));
                let mut storage = old.into_storage();
                if sel & 1 == 1 {
                    if let Some(obj) = storage.0.values_mut().next() {
                        let at = usize::from(input.byte().unwrap_or(0)) % obj.len().max(1);
                        if let Some(b) = obj.get_mut(at) {
                            *b ^= 1 << (sel >> 5);
                        }
                    }
                }
                w.ta = new_ta(storage);
                w.sessions.clear();
            }
            _ if sel & 1 == 1 => {
                let nonce = (sel & 2 == 2).then(|| input.bytes().to_vec());
                w.call(s, &Request::Report { nonce }, &[])
            }
            _ => w.call(s, &Request::GetInfo, &[]),
        }
    }
}

// Every input on the TA's stack, mutated with knowledge of CBOR (common/mod.rs).
fuzz_target!(|data: &[u8]| common::on_ta_stack(data, || check(data)));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    common::mutate(data, size, max_size, seed)
});
