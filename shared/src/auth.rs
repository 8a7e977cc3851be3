//! The SUIT authentication wrapper: `[bstr .cbor SUIT_Digest, * bstr .cbor COSE block]`.
//!
//! Every COSE block authenticates the SUIT_Digest as a detached payload (draft-ietf-suit-manifest
//! §8.3); the digest itself covers the bstr-wrapped manifest. An envelope is authentic when the
//! digest matches the manifest and at least one block verifies against a configured
//! [`TrustAnchor`]. A block whose algorithm or key we do not hold is simply not the one that
//! authenticates; a block that is malformed rejects the envelope.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::cbor::cose::{self, CoseBlock};
use crate::cbor::Reader;
use crate::crypto::SigAlg;
use crate::digest::SuitDigest;
use crate::error::{Error, Result};

/// COSE algorithm identifiers used for manifest authentication.
pub mod alg {
    /// ECDSA w/ SHA-256 (polymorphic; P-256 here).
    pub const ES256: i64 = -7;
    /// ECDSA using P-256 and SHA-256 (fully specified, RFC 9864).
    pub const ESP256: i64 = -9;
    /// ECDSA w/ SHA-384 (polymorphic; P-384 here).
    pub const ES384: i64 = -35;
    /// ECDSA using P-384 and SHA-384 (fully specified, RFC 9864).
    pub const ESP384: i64 = -51;
    /// EdDSA (polymorphic; Ed25519 here).
    pub const EDDSA: i64 = -8;
    /// Ed25519 (fully specified, RFC 9864).
    pub const ED25519: i64 = -19;
    /// ML-DSA-65 (RFC 9964), pure, empty context.
    pub const ML_DSA_65: i64 = -49;
    /// HSS/LMS hash-based signature (RFC 8778).
    pub const HSS_LMS: i64 = -46;
    /// ECDSA w/ SHA-512 (named in messages only).
    pub const ES512: i64 = -36;
    /// HMAC w/ SHA-256, 256-bit tag.
    pub const HMAC_256_256: i64 = 5;
}

/// A key that may authenticate manifests.
#[derive(Clone)]
pub enum TrustAnchor {
    /// A public key of a signature algorithm, checked by the crypto provider when made
    /// ([`TrustAnchor::signature`]).
    Signature {
        /// The algorithm the key verifies.
        alg: SigAlg,
        /// The public key as the algorithm encodes it (ECDSA: SEC1).
        public_key: Vec<u8>,
        /// Optional key id that COSE blocks may name.
        kid: Option<Vec<u8>>,
    },
    /// HMAC-SHA-256 secret (COSE_Mac0, alg 5).
    Hmac256 {
        /// The secret.
        key: Zeroizing<Vec<u8>>,
        /// Optional key id.
        kid: Option<Vec<u8>>,
    },
}

impl core::fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.describe())
    }
}

/// How many of a set of trust anchors must vouch for an envelope. The policy belongs to the
/// anchor set (built into the TA, or given to `suit-tool`), never to the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnchorPolicy {
    /// A valid block from any one anchor suffices.
    #[default]
    AnyOne,
    /// Every anchor must have a valid block over the same digest (e.g. the hybrid
    /// "ECDSA P-384 and ML-DSA-65").
    All,
}

impl TrustAnchor {
    /// A public key of `alg`, refused unless the crypto provider accepts it as one.
    pub fn signature(alg: SigAlg, public_key: &[u8], kid: Option<Vec<u8>>) -> Result<Self> {
        crate::crypto::provider().check_public_key(alg, public_key)?;
        Ok(TrustAnchor::Signature {
            alg,
            public_key: public_key.to_vec(),
            kid,
        })
    }

    /// An ECDSA public key from its SEC1 encoding; the curve is chosen by the point's length.
    pub fn from_sec1(point: &[u8], kid: Option<Vec<u8>>) -> Result<Self> {
        let alg = match point.len() {
            33 | 65 => SigAlg::EcdsaP256Sha256,
            49 | 97 => SigAlg::EcdsaP384Sha384,
            _ => {
                return Err(Error::InvalidValue {
                    context: "trust anchor",
                    element: "public key",
                    reason: "not a valid P-256 or P-384 SEC1 point",
                })
            }
        };
        Self::signature(alg, point, kid)
    }

    /// What kind of key this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            TrustAnchor::Signature { alg, .. } => match alg {
                SigAlg::EcdsaP256Sha256 => "ECDSA P-256 key",
                SigAlg::EcdsaP384Sha384 => "ECDSA P-384 key",
                SigAlg::Ed25519 => "Ed25519 key",
                SigAlg::MlDsa65 => "ML-DSA-65 key",
                SigAlg::HssLms => "HSS-LMS key",
            },
            TrustAnchor::Hmac256 { .. } => "HMAC-256 key",
        }
    }

    /// The COSE algorithms this anchor verifies.
    pub fn cose_algs(&self) -> &'static [i64] {
        match self {
            TrustAnchor::Signature { alg, .. } => alg.cose_ids(),
            TrustAnchor::Hmac256 { .. } => &[alg::HMAC_256_256],
        }
    }

    fn kid(&self) -> Option<&[u8]> {
        match self {
            TrustAnchor::Signature { kid, .. } | TrustAnchor::Hmac256 { kid, .. } => kid.as_deref(),
        }
    }

    /// Whether a block naming `kid` may have been made with this anchor.
    fn kid_allows(&self, kid: &[u8]) -> bool {
        match self.kid() {
            Some(mine) if !kid.is_empty() => mine == kid,
            _ => true,
        }
    }

    fn verify_signature(&self, alg: i64, tbs: &[u8], signature: &[u8]) -> bool {
        match self {
            TrustAnchor::Signature {
                alg: key_alg,
                public_key,
                ..
            } if SigAlg::from_cose(alg) == Some(*key_alg) => {
                crate::crypto::provider().verify(*key_alg, public_key, tbs, signature)
            }
            _ => false,
        }
    }

    fn verify_mac(&self, cose_alg: i64, tbm: &[u8], tag: &[u8]) -> bool {
        match (self, cose_alg) {
            (TrustAnchor::Hmac256 { key, .. }, alg::HMAC_256_256) => {
                let expected = crate::crypto::mac::hmac_sha256(key, &[tbm]);
                tag.len() == expected.len() && bool::from(expected.as_slice().ct_eq(tag))
            }
            _ => false,
        }
    }

    fn handles(&self, cose_alg: i64) -> bool {
        self.cose_algs().contains(&cose_alg)
    }
}

/// The kind of COSE structure in an authentication block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// COSE_Sign1 (tag 18).
    Sign1,
    /// COSE_Sign (tag 98), one entry per signer.
    Sign,
    /// COSE_Mac0 (tag 17).
    Mac0,
    /// COSE_Mac (tag 97) — recognised, not supported.
    Mac,
}

impl BlockKind {
    /// The COSE structure name.
    pub fn name(self) -> &'static str {
        match self {
            BlockKind::Sign1 => "COSE_Sign1",
            BlockKind::Sign => "COSE_Sign",
            BlockKind::Mac0 => "COSE_Mac0",
            BlockKind::Mac => "COSE_Mac",
        }
    }
}

/// What a block says about itself, for inspection (nothing here is verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSummary {
    /// COSE structure.
    pub kind: BlockKind,
    /// Algorithm per signer (one entry except for COSE_Sign).
    pub algs: Vec<Option<i64>>,
    /// Key id per signer, empty when absent.
    pub kids: Vec<Vec<u8>>,
}

/// Which anchor authenticated the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// 1-based index of the block that verified.
    pub block: usize,
    /// Index into the trust anchor list.
    pub anchor: usize,
    /// COSE algorithm of that block.
    pub alg: i64,
}

/// A decoded authentication wrapper.
#[derive(Debug, Clone)]
pub struct AuthWrapper<'a> {
    /// The digest of the bstr-wrapped manifest.
    pub digest: SuitDigest<'a>,
    /// The SUIT_Digest encoding: the detached payload of every block.
    digest_encoding: &'a [u8],
    /// The raw COSE blocks (tagged COSE structures).
    blocks: Vec<&'a [u8]>,
}

/// One parsed COSE block, signer by signer.
struct ParsedBlock {
    kind: BlockKind,
    signers: Vec<Signer>,
}

struct Signer {
    alg: Option<i64>,
    kid: Vec<u8>,
    /// The data the signature or tag is over (Sig_structure / MAC_structure).
    to_be_verified: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> AuthWrapper<'a> {
    /// Decodes `bstr .cbor SUIT_Authentication` content.
    pub fn decode(bytes: &'a [u8]) -> Result<Self> {
        Reader::decode_exact(bytes, "authentication wrapper", |r| {
            let n = r.array()?;
            if n == 0 {
                return Err(Error::MissingElement {
                    context: "authentication wrapper",
                    element: "digest",
                });
            }
            let digest_encoding = r.bytes()?;
            let digest =
                SuitDigest::decode_exact(digest_encoding, "authentication wrapper digest")?;
            let mut blocks = Vec::new();
            for _ in 1..n {
                blocks.push(r.bytes()?);
            }
            Ok(AuthWrapper {
                digest,
                digest_encoding,
                blocks,
            })
        })
    }

    /// The SUIT_Digest encoding that every block authenticates.
    pub fn digest_encoding(&self) -> &'a [u8] {
        self.digest_encoding
    }

    /// The COSE blocks as encoded.
    pub fn raw_blocks(&self) -> &[&'a [u8]] {
        &self.blocks
    }

    /// Number of COSE blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Summaries of every block, for inspection.
    pub fn summaries(&self) -> Result<Vec<BlockSummary>> {
        let mut out = Vec::new();
        for (i, raw) in self.blocks.iter().enumerate() {
            let parsed = self.parse_block(i + 1, raw)?;
            out.push(BlockSummary {
                kind: parsed.kind,
                algs: parsed.signers.iter().map(|s| s.alg).collect(),
                kids: parsed.signers.iter().map(|s| s.kid.clone()).collect(),
            });
        }
        Ok(out)
    }

    /// Authenticates `manifest_bstr` (the complete bstr encoding found at envelope key 3)
    /// when any one of `anchors` vouches for it ([`AnchorPolicy::AnyOne`]).
    pub fn authenticate(
        &self,
        manifest_bstr: &[u8],
        anchors: &[TrustAnchor],
    ) -> Result<Authenticated> {
        self.authenticate_with(manifest_bstr, anchors, AnchorPolicy::AnyOne)
    }

    /// Authenticates `manifest_bstr` under `policy`.
    ///
    /// Order of checks: every block must be well-formed and detached, the anchors the policy
    /// asks for must each have a block that verifies (any one, or all of them), and the
    /// digest must cover the manifest. All three are required.
    pub fn authenticate_with(
        &self,
        manifest_bstr: &[u8],
        anchors: &[TrustAnchor],
        policy: AnchorPolicy,
    ) -> Result<Authenticated> {
        if self.blocks.is_empty() {
            return Err(Error::NoAuthenticationBlock);
        }
        let mut verified = None;
        let mut vouched = alloc::vec![false; anchors.len()];
        let mut tried = Vec::new();
        for (i, raw) in self.blocks.iter().enumerate() {
            let block_no = i + 1;
            let parsed = self.parse_block(block_no, raw)?;
            if parsed.kind == BlockKind::Mac {
                tried.push(format!(
                    "block {block_no} is a COSE_Mac with recipients, which is not supported"
                ));
                continue;
            }
            for signer in &parsed.signers {
                let Some(alg) = signer.alg else {
                    return Err(Error::InvalidAuthenticationBlock {
                        index: block_no,
                        reason: "no algorithm in the protected header",
                    });
                };
                let candidates: Vec<usize> = anchors
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.handles(alg) && a.kid_allows(&signer.kid))
                    .map(|(n, _)| n)
                    .collect();
                if candidates.is_empty() {
                    tried.push(format!(
                        "block {block_no} ({}, alg {}) has no matching trust anchor",
                        parsed.kind.name(),
                        alg_name(alg)
                    ));
                    continue;
                }
                let verifies = |n: usize| match parsed.kind {
                    BlockKind::Mac0 => {
                        anchors[n].verify_mac(alg, &signer.to_be_verified, &signer.signature)
                    }
                    _ => {
                        anchors[n].verify_signature(alg, &signer.to_be_verified, &signer.signature)
                    }
                };
                // Under `All` a block may still vouch for an anchor not yet vouched for.
                let ok = candidates
                    .iter()
                    .copied()
                    .filter(|&n| policy == AnchorPolicy::AnyOne || !vouched[n])
                    .find(|&n| verifies(n));
                match ok {
                    Some(anchor) => {
                        vouched[anchor] = true;
                        verified.get_or_insert(Authenticated {
                            block: block_no,
                            anchor,
                            alg,
                        });
                    }
                    None if candidates.iter().all(|&n| vouched[n]) => {}
                    None => tried.push(format!(
                        "block {block_no} ({}, alg {}) does not verify",
                        parsed.kind.name(),
                        alg_name(alg)
                    )),
                }
            }
        }
        if policy == AnchorPolicy::All {
            let missing: Vec<String> = anchors
                .iter()
                .zip(&vouched)
                .enumerate()
                .filter(|(_, (_, v))| !**v)
                .map(|(n, (a, _))| format!("trust anchor {} ({})", n + 1, a.describe()))
                .collect();
            if !missing.is_empty() {
                tried.push(format!(
                    "every trust anchor must sign, and no valid signature from {}",
                    missing.join(", ")
                ));
                return Err(Error::NotAuthenticated(tried.join("; ")));
            }
        }
        let Some(verified) = verified else {
            return Err(Error::NotAuthenticated(tried.join("; ")));
        };
        if !self.digest.matches_data(manifest_bstr) {
            return Err(Error::ManifestDigestMismatch);
        }
        Ok(verified)
    }

    fn parse_block(&self, index: usize, raw: &[u8]) -> Result<ParsedBlock> {
        let invalid = |reason| Error::InvalidAuthenticationBlock { index, reason };
        let tag = Reader::new(raw, "authentication block")
            .tag()
            .map_err(|_| invalid("not a tagged COSE structure"))?;
        // Bound the input before it is decoded.
        crate::cbor::check_cose(raw, "authentication block")?;
        let kind = match tag {
            cose::tag::SIGN1 => BlockKind::Sign1,
            cose::tag::SIGN => BlockKind::Sign,
            cose::tag::MAC0 => BlockKind::Mac0,
            cose::tag::MAC => BlockKind::Mac,
            _ => {
                return Err(invalid(
                    "not a COSE_Sign1, COSE_Sign, COSE_Mac0 or COSE_Mac structure",
                ))
            }
        };
        let block = CoseBlock::decode_tagged(raw, tag, "authentication block").map_err(|_| {
            invalid(match kind {
                BlockKind::Sign1 => "malformed COSE_Sign1",
                BlockKind::Sign => "malformed COSE_Sign",
                BlockKind::Mac0 => "malformed COSE_Mac0",
                BlockKind::Mac => "malformed COSE_Mac",
            })
        })?;
        let payload = self.digest_encoding;
        // An attached payload must be the same digest (some tools attach it); it is signed
        // the same way as the detached form.
        let check_payload = |p: Option<&[u8]>| match p {
            Some(bytes) if bytes != payload => {
                Err(invalid("its payload is not the manifest digest"))
            }
            _ => Ok(()),
        };
        let signer = |headers: &cose::Headers<'_>, to_be_verified, signature: &[u8]| {
            let (alg, kid) = header_alg_kid(index, headers)?;
            Ok(Signer {
                alg,
                kid,
                to_be_verified,
                signature: signature.to_vec(),
            })
        };
        let signers = match block {
            CoseBlock::Sign1 {
                headers,
                payload: attached,
                signature,
            } => {
                check_payload(attached)?;
                let tbs = cose::to_be_signed("Signature1", headers.protected_raw, None, payload);
                alloc::vec![signer(&headers, tbs, signature)?]
            }
            CoseBlock::Sign {
                headers,
                payload: attached,
                signatures,
            } => {
                check_payload(attached)?;
                no_crit(index, &headers)?;
                if signatures.is_empty() {
                    return Err(invalid("COSE_Sign without signatures"));
                }
                let mut signers = Vec::new();
                for sig in &signatures {
                    let tbs = cose::to_be_signed(
                        "Signature",
                        headers.protected_raw,
                        Some(sig.headers.protected_raw),
                        payload,
                    );
                    signers.push(signer(&sig.headers, tbs, sig.signature)?);
                }
                signers
            }
            CoseBlock::Mac0 {
                headers,
                payload: attached,
                tag,
            } => {
                check_payload(attached)?;
                let tbm = cose::to_be_signed("MAC0", headers.protected_raw, None, payload);
                alloc::vec![signer(&headers, tbm, tag)?]
            }
            CoseBlock::Mac => Vec::new(),
        };
        Ok(ParsedBlock { kind, signers })
    }
}

/// No critical header parameters: none are supported, and RFC 9052 3.1 puts `crit` in the
/// protected header, so one the signature does not cover is refused too, not ignored.
fn no_crit(index: usize, headers: &cose::Headers<'_>) -> Result<()> {
    let reason = if headers.protected.crit {
        "critical header parameters are not supported"
    } else if headers.unprotected.crit {
        "crit must be in the protected header"
    } else {
        return Ok(());
    };
    Err(Error::InvalidAuthenticationBlock { index, reason })
}

/// The algorithm (protected header only) and key id (either header) of a signer.
fn header_alg_kid(index: usize, headers: &cose::Headers<'_>) -> Result<(Option<i64>, Vec<u8>)> {
    no_crit(index, headers)?;
    let (protected, unprotected) = (&headers.protected, &headers.unprotected);
    if unprotected.has_alg && !protected.has_alg {
        return Err(Error::InvalidAuthenticationBlock {
            index,
            reason: "the algorithm must be in the protected header",
        });
    }
    let kid = if protected.kid.is_empty() {
        unprotected.kid
    } else {
        protected.kid
    };
    Ok((protected.alg, kid.to_vec()))
}

/// Readable name of a COSE algorithm id.
pub fn alg_name(alg: i64) -> String {
    let name = match alg {
        alg::ES256 => "ES256",
        alg::ESP256 => "ESP256",
        alg::ES384 => "ES384",
        alg::ESP384 => "ESP384",
        alg::HMAC_256_256 => "HMAC 256/256",
        alg::ED25519 => "Ed25519",
        alg::EDDSA => "EdDSA",
        alg::ML_DSA_65 => "ML-DSA-65",
        alg::HSS_LMS => "HSS-LMS",
        alg::ES512 => "ES512",
        _ => return format!("{alg}"),
    };
    format!("{name} ({alg})")
}
