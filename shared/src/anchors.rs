//! Trust-anchor rotation (RFC 9124 REQ.SEC.KEY.ROTATION): the anchor set as the TA keeps it,
//! and the payload of a signed anchor update.
//!
//! An anchor update is an ordinary SUIT envelope for the dedicated component
//! [`COMPONENT`] (`["suit-trust-anchors"]`) whose payload is integrated in the envelope and
//! bound by the manifest's image digest and size. It is authenticated under the anchor set
//! **in force** (its keys and policy) and carries its own sequence number, which must exceed
//! the last applied one. The payload (strict CBOR):
//!
//! ```text
//! anchor-update = [policy, [+ op]]      policy: 0 any one anchor, 1 every anchor
//! op  = [0, key]                        add
//!     / [1, key-id, key]                replace the anchor key-id by key
//!     / [2, key-id]                     retire the anchor key-id
//! key = [cose-alg, public-key, kid / null]
//! ```
//!
//! `public-key` is the key as its algorithm encodes it — the subjectPublicKey of the key's
//! SPKI (ECDSA: the SEC1 point; Ed25519, ML-DSA-65, HSS-LMS: the raw key) — and must be a key
//! of `cose-alg`. An anchor's key id ([`key_id`]) is its `kid` when it has one, else the
//! SHA-256 of its public key. The set that results must be non-empty, at most
//! [`MAX_ANCHORS`], name every key once and hold only signature keys; the update's policy
//! replaces the old one.

use alloc::format;
use alloc::vec::Vec;

use crate::auth::{AnchorPolicy, TrustAnchor};
use crate::cbor::{Reader, Writer};
use crate::crypto::SigAlg;
use crate::digest::DigestAlg;
use crate::error::{Error, Result};

/// The component id of anchor updates: `["suit-trust-anchors"]`.
pub const COMPONENT: &[u8] = b"suit-trust-anchors";
/// Most anchors a set may hold.
pub const MAX_ANCHORS: usize = 8;
/// Longest anchor-update payload accepted.
pub const MAX_PAYLOAD: usize = 16 * 1024;

/// Whether `id` is the trust-anchor component.
pub fn is_anchor_component(id: &crate::component::ComponentId) -> bool {
    id.parts().len() == 1 && id.parts()[0] == COMPONENT
}

/// An anchor's key id: its `kid`, else the SHA-256 of its public key (HMAC secrets without
/// a kid have none that can be named).
pub fn key_id(anchor: &TrustAnchor) -> Vec<u8> {
    match anchor {
        TrustAnchor::Signature { kid: Some(kid), .. }
        | TrustAnchor::Hmac256 { kid: Some(kid), .. } => kid.clone(),
        TrustAnchor::Signature { public_key, .. } => {
            DigestAlg::Sha256.digest(public_key).as_bytes().to_vec()
        }
        TrustAnchor::Hmac256 { kid: None, .. } => Vec::new(),
    }
}

/// A set of anchors and the policy that binds them.
#[derive(Debug, Clone)]
pub struct AnchorSet {
    /// How many anchors must sign.
    pub policy: AnchorPolicy,
    /// The anchors (signature keys only once updated).
    pub anchors: Vec<TrustAnchor>,
}

/// One operation of an update.
#[derive(Debug, Clone)]
pub enum Op {
    /// Add a key.
    Add(TrustAnchor),
    /// Replace the anchor with this key id by a key.
    Replace(Vec<u8>, TrustAnchor),
    /// Retire the anchor with this key id.
    Retire(Vec<u8>),
}

/// A decoded anchor-update payload.
#[derive(Debug, Clone)]
pub struct AnchorUpdate {
    /// The policy of the new set.
    pub policy: AnchorPolicy,
    /// What changes, in order.
    pub ops: Vec<Op>,
}

fn malformed(element: &'static str, reason: &'static str) -> Error {
    Error::InvalidValue {
        context: "trust-anchor update",
        element,
        reason,
    }
}

fn policy_code(policy: AnchorPolicy) -> u64 {
    match policy {
        AnchorPolicy::AnyOne => 0,
        AnchorPolicy::All => 1,
    }
}

fn read_policy(r: &mut Reader<'_>) -> Result<AnchorPolicy> {
    match r.u64()? {
        0 => Ok(AnchorPolicy::AnyOne),
        1 => Ok(AnchorPolicy::All),
        _ => Err(malformed("policy", "neither 0 (any one) nor 1 (all)")),
    }
}

/// Writes a signature anchor as `[cose-alg, public-key, kid / null]`; `None` for an HMAC
/// anchor (never carried or stored).
fn write_key(anchor: &TrustAnchor, w: &mut Writer) -> Option<()> {
    let TrustAnchor::Signature {
        alg,
        public_key,
        kid,
    } = anchor
    else {
        return None;
    };
    w.array(3).i64(alg.cose_ids()[0]).bytes(public_key);
    match kid {
        Some(kid) => w.bytes(kid),
        None => w.null(),
    };
    Some(())
}

/// Reads `[cose-alg, public-key, kid / null]`; the crypto provider checks the key is one of
/// the algorithm.
fn read_key(r: &mut Reader<'_>) -> Result<TrustAnchor> {
    r.array_of(3, "trust-anchor key")?;
    let cose = r.i64()?;
    let alg = SigAlg::from_cose(cose).ok_or_else(|| {
        Error::AnchorSet(format!(
            "COSE algorithm {cose} is not a signature algorithm this TA verifies"
        ))
    })?;
    let public_key = r.bytes()?;
    let kid = if r.is(minicbor::data::Type::Null) {
        r.null()?;
        None
    } else {
        Some(r.bytes()?.to_vec())
    };
    TrustAnchor::signature(alg, public_key, kid).map_err(|e| Error::AnchorKey {
        alg: alg.name(),
        error: alloc::boxed::Box::new(e),
    })
}

impl AnchorSet {
    /// The encoding `[policy, [key...]]` of a set of signature anchors; `None` if it holds an
    /// HMAC anchor.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut w = Writer::new();
        w.array(2).u64(policy_code(self.policy));
        w.array(self.anchors.len());
        for anchor in &self.anchors {
            write_key(anchor, &mut w)?;
        }
        Some(w.into_bytes())
    }

    /// Reads what [`AnchorSet::encode`] wrote.
    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        r.array_of(2, "anchor set")?;
        let policy = read_policy(r)?;
        let n = r.array()?;
        if n == 0 || n > MAX_ANCHORS as u64 {
            return Err(malformed("anchors", "empty or too many"));
        }
        let anchors = (0..n).map(|_| read_key(r)).collect::<Result<_>>()?;
        Ok(AnchorSet { policy, anchors })
    }

    fn position(&self, id: &[u8]) -> Result<usize> {
        self.anchors
            .iter()
            .position(|a| key_id(a) == id)
            .ok_or_else(|| Error::AnchorSet(format!("no anchor has key id {}", Hex(id))))
    }

    /// The set after `update`, checked: refused if it is empty, too large, names a key twice,
    /// keeps an HMAC anchor or holds a key whose algorithm `verifies` says this build cannot
    /// verify (such a key could never sign: under the all-anchors policy no update could
    /// pass again).
    pub fn apply(
        &self,
        update: &AnchorUpdate,
        verifies: impl Fn(SigAlg) -> bool,
    ) -> Result<AnchorSet> {
        let mut next = AnchorSet {
            policy: update.policy,
            anchors: self.anchors.clone(),
        };
        for op in &update.ops {
            match op {
                Op::Add(key) => next.anchors.push(key.clone()),
                Op::Replace(id, key) => {
                    let at = next.position(id)?;
                    next.anchors[at] = key.clone();
                }
                Op::Retire(id) => {
                    let at = next.position(id)?;
                    next.anchors.remove(at);
                }
            }
        }
        if next.anchors.is_empty() {
            return Err(Error::AnchorSet(
                "it would leave no trust anchor: nothing could authenticate another update".into(),
            ));
        }
        if next.anchors.len() > MAX_ANCHORS {
            return Err(Error::AnchorSet(format!(
                "it would leave {} anchors, more than the {MAX_ANCHORS} a set may hold",
                next.anchors.len()
            )));
        }
        for (n, anchor) in next.anchors.iter().enumerate() {
            if matches!(anchor, TrustAnchor::Hmac256 { .. }) {
                return Err(Error::AnchorSet(
                    "it keeps an HMAC anchor: a rotated set holds public keys only; retire it"
                        .into(),
                ));
            }
            if let TrustAnchor::Signature { alg, .. } = anchor {
                if !verifies(*alg) {
                    return Err(Error::AnchorSet(format!(
                        "it adds a {} key, and this TA was built without that verifier \
                         (TA_FEATURES): the key could never sign",
                        alg.name()
                    )));
                }
            }
            let id = key_id(anchor);
            if next.anchors[..n].iter().any(|other| key_id(other) == id) {
                return Err(Error::AnchorSet(format!(
                    "key id {} would name two anchors",
                    Hex(&id)
                )));
            }
        }
        Ok(next)
    }
}

impl AnchorUpdate {
    /// Decodes and checks a payload (every key is one of its algorithm).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(malformed("payload", "larger than 16 KiB"));
        }
        Reader::decode_exact(bytes, "trust-anchor update", |r| {
            r.array_of(2, "trust-anchor update")?;
            let policy = read_policy(r)?;
            let n = r.array()?;
            if n == 0 || n > 2 * MAX_ANCHORS as u64 {
                return Err(malformed("operations", "none, or more than 16"));
            }
            let mut ops = Vec::new();
            for _ in 0..n {
                let len = r.array()?;
                ops.push(match (r.u64()?, len) {
                    (0, 2) => Op::Add(read_key(r)?),
                    (1, 3) => {
                        let id = r.bytes()?.to_vec();
                        Op::Replace(id, read_key(r)?)
                    }
                    (2, 2) => Op::Retire(r.bytes()?.to_vec()),
                    _ => {
                        return Err(malformed(
                            "operation",
                            "not [0, key], [1, key-id, key] or [2, key-id]",
                        ))
                    }
                });
            }
            Ok(AnchorUpdate { policy, ops })
        })
    }

    /// The payload's encoding; `None` if an operation carries an HMAC anchor.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut w = Writer::new();
        w.array(2).u64(policy_code(self.policy));
        w.array(self.ops.len());
        for op in &self.ops {
            match op {
                Op::Add(key) => {
                    w.array(2).u64(0);
                    write_key(key, &mut w)?;
                }
                Op::Replace(id, key) => {
                    w.array(3).u64(1).bytes(id);
                    write_key(key, &mut w)?;
                }
                Op::Retire(id) => {
                    w.array(2).u64(2).bytes(id);
                }
            }
        }
        Some(w.into_bytes())
    }
}

/// Hex for messages.
struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alg: SigAlg, len: usize, fill: u8) -> TrustAnchor {
        TrustAnchor::Signature {
            alg,
            public_key: alloc::vec![fill; len],
            kid: None,
        }
    }

    #[test]
    fn a_key_without_a_linked_verifier_is_refused() {
        let set = AnchorSet {
            policy: AnchorPolicy::All,
            anchors: alloc::vec![key(SigAlg::EcdsaP384Sha384, 97, 4)],
        };
        let update = AnchorUpdate {
            policy: AnchorPolicy::All,
            ops: alloc::vec![Op::Add(key(SigAlg::MlDsa65, 1952, 7))],
        };
        let without_mldsa = |alg| alg != SigAlg::MlDsa65;
        match set.apply(&update, without_mldsa) {
            Err(Error::AnchorSet(why)) => assert!(why.contains("ML-DSA-65"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let next = set.apply(&update, |_| true).expect("every verifier linked");
        assert_eq!(next.anchors.len(), 2);
    }
}
