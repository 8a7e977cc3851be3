//! Encoding and signing, for the vendor tool (feature `author`): the inverse of the decoders,
//! producing deterministic encodings (§8.1) with the authentication wrapper first (§8.3).

use alloc::string::String;
use alloc::vec::Vec;

use crate::auth::{alg, AuthWrapper};
use crate::cbor::{cose, Writer};
use crate::command::{key as cmd, Command, CommandSequence, IndexSelection};
use crate::digest::{DigestAlg, SuitDigest};
use crate::envelope::{self, Envelope, TAG_ENVELOPE};
use crate::error::{Error, Result};
use crate::manifest::{key as mkey, Manifest, Severable, TextMap};
use crate::params::{key as pkey, Parameter, VendorId, VersionComparison};

/// A key that signs envelopes.
pub enum SigningKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::SigningKey),
}

impl SigningKey {
    /// The default COSE algorithm for this key (ES256 / ES384).
    pub fn default_alg(&self) -> i64 {
        match self {
            SigningKey::P256(_) => alg::ES256,
            SigningKey::P384(_) => alg::ES384,
        }
    }

    fn sign(&self, alg_id: i64, data: &[u8]) -> Result<Vec<u8>> {
        let provider = crate::crypto::provider();
        match (self, alg_id) {
            (SigningKey::P256(k), alg::ES256 | alg::ESP256) => provider
                .private_key(crate::crypto::Curve::P256, &k.to_bytes(), None)?
                .sign(data),
            (SigningKey::P384(k), alg::ES384 | alg::ESP384) => provider
                .private_key(crate::crypto::Curve::P384, &k.to_bytes(), None)?
                .sign(data),
            _ => Err(Error::Unsupported(alloc::format!(
                "signing with algorithm {} and a key of another curve",
                crate::auth::alg_name(alg_id)
            ))),
        }
    }
}

fn sequence(w: &mut Writer, seq: &CommandSequence<'_>) {
    w.array(seq.commands.len() * 2);
    for c in &seq.commands {
        command(w, c);
    }
}

/// Encodes a command sequence (the content of its bstr).
pub fn encode_sequence(seq: &CommandSequence<'_>) -> Vec<u8> {
    let mut w = Writer::new();
    sequence(&mut w, seq);
    w.into_bytes()
}

fn command(w: &mut Writer, c: &Command<'_>) {
    match c {
        Command::Condition(condition, policy) => {
            w.i64(condition.key()).u64(policy.0);
        }
        Command::Directive(directive, policy) => {
            w.i64(directive.key()).u64(policy.0);
        }
        Command::SetComponentIndex(sel) => {
            w.i64(cmd::SET_COMPONENT_INDEX);
            match sel {
                IndexSelection::One(i) => w.u64(*i as u64),
                IndexSelection::All => w.bool(true),
                IndexSelection::List(list) => {
                    w.array(list.len());
                    for i in list {
                        w.u64(*i as u64);
                    }
                    w
                }
            };
        }
        Command::OverrideParameters(p) => {
            w.i64(cmd::OVERRIDE_PARAMETERS);
            parameters(w, p);
        }
        Command::SetParameters(p) => {
            w.i64(cmd::SET_PARAMETERS);
            parameters(w, p);
        }
        Command::OverrideMultiple(entries) => {
            w.i64(cmd::OVERRIDE_MULTIPLE).map(entries.len());
            for (i, p) in entries {
                w.u64(*i as u64);
                parameters(w, p);
            }
        }
        Command::CopyParams(entries) => {
            w.i64(cmd::COPY_PARAMS).map(entries.len());
            for (i, keys) in entries {
                w.u64(*i as u64).array(keys.len());
                for k in keys {
                    w.i64(*k);
                }
            }
        }
        Command::TryEach {
            branches,
            empty_fallback,
        } => {
            w.i64(cmd::TRY_EACH)
                .array(branches.len() + usize::from(*empty_fallback));
            for b in branches {
                w.bytes(&encode_sequence(b));
            }
            if *empty_fallback {
                w.null();
            }
        }
        Command::RunSequence(seq) => {
            w.i64(cmd::RUN_SEQUENCE).bytes(&encode_sequence(seq));
        }
    }
}

fn digest(d: &SuitDigest<'_>) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(2).i64(d.alg.cose_id()).bytes(d.bytes);
    w.into_bytes()
}

fn parameters(w: &mut Writer, params: &[Parameter<'_>]) {
    w.map(
        params
            .iter()
            .filter(|p| !matches!(p, Parameter::Custom(_)))
            .count(),
    );
    for p in params {
        let k = p.key();
        match p {
            Parameter::VendorId(VendorId::Uuid(u)) => w.i64(k).bytes(&u.0),
            Parameter::VendorId(VendorId::Pen(pen)) => w.i64(k).tag(112).bytes(pen),
            Parameter::ClassId(u) | Parameter::DeviceId(u) => w.i64(k).bytes(&u.0),
            Parameter::ImageDigest(d) => w.i64(k).bytes(&digest(d)),
            Parameter::UseBefore(v)
            | Parameter::ComponentSlot(v)
            | Parameter::ImageSize(v)
            | Parameter::SourceComponent(v)
            | Parameter::MinimumBattery(v) => w.i64(k).u64(*v),
            Parameter::StrictOrder(b) | Parameter::SoftFailure(b) => w.i64(k).bool(*b),
            Parameter::Content(b)
            | Parameter::EncryptionInfo(b)
            | Parameter::InvokeArgs(b)
            | Parameter::FetchArgs(b)
            | Parameter::WaitInfo(b)
            | Parameter::ComponentMetadata(b) => w.i64(k).bytes(b),
            Parameter::Uri(u) => w.i64(k).str(u),
            Parameter::VerityRoot(root) => w.i64(k).bytes(&digest(&SuitDigest {
                alg: crate::digest::DigestAlg::Sha256,
                bytes: &root[..],
            })),
            Parameter::UpdatePriority(v) => w.i64(k).i64(*v),
            Parameter::Version(v) => {
                let mut inner = Writer::new();
                let cmp = match v.comparison {
                    VersionComparison::Greater => 1,
                    VersionComparison::GreaterEqual => 2,
                    VersionComparison::Equal => 3,
                    VersionComparison::LesserEqual => 4,
                    VersionComparison::Lesser => 5,
                };
                inner.array(2).u64(cmp).array(v.version.len());
                for n in &v.version {
                    inner.i64(*n);
                }
                w.i64(pkey::VERSION).bytes(&inner.into_bytes())
            }
            // Custom parameters carry values this model does not keep; they are not emitted.
            Parameter::Custom(_) => w,
        };
    }
}

fn text_map(t: &TextMap<'_>) -> Vec<u8> {
    let mut w = Writer::new();
    w.map(t.languages.len());
    for (lang, text) in &t.languages {
        w.str(lang).map(text.manifest.len() + text.components.len());
        for (k, v) in &text.manifest {
            w.i64(*k).str(v);
        }
        for (id, fields) in &text.components {
            crate::abi::write_component_id(&mut w, id);
            w.map(fields.len());
            for (k, v) in fields {
                w.i64(*k).str(v);
            }
        }
    }
    w.into_bytes()
}

/// A manifest encoded for an envelope: the manifest bytes and the severed members.
pub struct EncodedManifest {
    /// The SUIT_Manifest encoding (content of envelope key 3).
    pub manifest: Vec<u8>,
    /// Severed members: envelope key → bstr content.
    pub severed: Vec<(i64, Vec<u8>)>,
}

/// Encodes a manifest; severable elements marked `severed` go to the envelope, and the
/// manifest keeps their `digest_alg` digest.
pub fn encode_manifest(m: &Manifest<'_>, digest_alg: DigestAlg) -> EncodedManifest {
    let mut entries: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut severed = Vec::new();
    let one = |f: &dyn Fn(&mut Writer)| {
        let mut w = Writer::new();
        f(&mut w);
        w.into_bytes()
    };
    entries.push((
        mkey::VERSION,
        one(&|w| {
            w.u64(1);
        }),
    ));
    entries.push((
        mkey::SEQUENCE_NUMBER,
        one(&|w| {
            w.u64(m.sequence_number);
        }),
    ));
    let mut common = Writer::new();
    common.map(1 + usize::from(m.shared_sequence.is_some()));
    common.u64(2).array(m.components.len());
    for c in &m.components {
        crate::abi::write_component_id(&mut common, c);
    }
    if let Some(shared) = &m.shared_sequence {
        common.u64(4).bytes(&encode_sequence(shared));
    }
    let common = common.into_bytes();
    entries.push((
        mkey::COMMON,
        one(&|w| {
            w.bytes(&common);
        }),
    ));
    if let Some(uri) = m.reference_uri {
        entries.push((
            mkey::REFERENCE_URI,
            one(&|w| {
                w.str(uri);
            }),
        ));
    }
    if let Some(id) = &m.manifest_component_id {
        entries.push((
            mkey::MANIFEST_COMPONENT_ID,
            one(&|w| crate::abi::write_component_id(w, id)),
        ));
    }
    if let Some(v) = m.set_version {
        entries.push((mkey::SET_VERSION, v.to_vec()));
    }
    for (k, seq) in [
        (mkey::VALIDATE, &m.validate),
        (mkey::LOAD, &m.load),
        (mkey::INVOKE, &m.invoke),
        (mkey::UNINSTALL, &m.uninstall),
    ] {
        if let Some(seq) = seq {
            let bytes = encode_sequence(seq);
            entries.push((
                k,
                one(&|w| {
                    w.bytes(&bytes);
                }),
            ));
        }
    }
    let mut put = |k: i64, element: Element<'_>| match element {
        Element::Absent => {}
        Element::DigestOnly(d) => entries.push((k, digest(&d))),
        Element::Content { bytes, sever } => {
            let mut bstr = Writer::new();
            bstr.bytes(&bytes);
            let bstr = bstr.into_bytes();
            if sever {
                entries.push((k, digest(&digest_alg.digest(&bstr).as_suit_digest())));
                severed.push((k, bytes));
            } else {
                entries.push((k, bstr));
            }
        }
    };
    put(
        mkey::PAYLOAD_FETCH,
        Element::of(&m.payload_fetch, |s| encode_sequence(s)),
    );
    put(
        mkey::CANDIDATE_VERIFICATION,
        Element::of(&m.candidate_verification, |s| encode_sequence(s)),
    );
    put(
        mkey::INSTALL,
        Element::of(&m.install, |s| encode_sequence(s)),
    );
    put(mkey::TEXT, Element::of(&m.text, text_map));
    put(mkey::COSWID, Element::of(&m.coswid, |c| c.to_vec()));

    entries.sort_by_key(|(k, _)| *k);
    let mut w = Writer::new();
    w.map(entries.len());
    for (k, v) in &entries {
        w.i64(*k).raw(v);
    }
    EncodedManifest {
        manifest: w.into_bytes(),
        severed,
    }
}

/// A severable element ready for encoding.
enum Element<'d> {
    Absent,
    /// Only the digest is known (an element severed and not available).
    DigestOnly(SuitDigest<'d>),
    /// The element's bstr content, and whether to sever it into the envelope.
    Content {
        bytes: Vec<u8>,
        sever: bool,
    },
}

impl<'d> Element<'d> {
    fn of<T>(s: &Severable<'d, T>, encode: impl Fn(&T) -> Vec<u8>) -> Self {
        match s {
            Severable::Absent => Element::Absent,
            Severable::Severed(d) => Element::DigestOnly(*d),
            Severable::Present { value, severed } => Element::Content {
                bytes: encode(value),
                sever: *severed,
            },
        }
    }
}

/// Builds an unsigned, tagged envelope: authentication wrapper with only the digest.
pub fn build_envelope(
    m: &EncodedManifest,
    integrated: &[(String, Vec<u8>)],
    digest_alg: DigestAlg,
) -> Vec<u8> {
    let mut manifest_bstr = Writer::new();
    manifest_bstr.bytes(&m.manifest);
    let manifest_bstr = manifest_bstr.into_bytes();
    let d = digest_alg.digest(&manifest_bstr);
    let mut digest_enc = Writer::new();
    digest_enc
        .array(2)
        .i64(d.alg().cose_id())
        .bytes(d.as_bytes());
    let mut auth = Writer::new();
    auth.array(1).bytes(&digest_enc.into_bytes());
    assemble(
        &auth.into_bytes(),
        &manifest_bstr,
        m.severed.iter().map(|(k, v)| (*k, v.as_slice())),
        integrated.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
    )
}

fn assemble<'x>(
    auth_content: &[u8],
    manifest_bstr: &[u8],
    severed: impl Iterator<Item = (i64, &'x [u8])> + Clone,
    integrated: impl Iterator<Item = (&'x str, &'x [u8])> + Clone,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.tag(TAG_ENVELOPE)
        .map(2 + severed.clone().count() + integrated.clone().count());
    w.i64(envelope::key::AUTHENTICATION).bytes(auth_content);
    w.i64(envelope::key::MANIFEST).raw(manifest_bstr);
    let mut severed: Vec<_> = severed.collect();
    severed.sort_by_key(|(k, _)| *k);
    for (k, v) in severed {
        w.i64(k).bytes(v);
    }
    for (k, v) in integrated {
        w.str(k).bytes(v);
    }
    w.into_bytes()
}

/// Adds a COSE_Sign1 block made with `key` and `alg_id` to an envelope, after checking that
/// the envelope's digest matches its manifest (the signer must not sign a digest it has not
/// verified, §8.3).
pub fn sign_envelope(
    envelope_bytes: &[u8],
    key: &SigningKey,
    alg_id: i64,
    kid: Option<&[u8]>,
) -> Result<Vec<u8>> {
    sign_envelope_with(envelope_bytes, alg_id, kid, |tbs| key.sign(alg_id, tbs))
}

/// Adds a COSE_Sign1 block of algorithm `alg_id` to an envelope, its signature made by
/// `sign` over the Sig_structure (for keys outside the provider: Ed25519, ML-DSA, HSS/LMS).
/// The envelope's existing blocks stay: several blocks over the same SUIT_Digest (§8.3).
pub fn sign_envelope_with(
    envelope_bytes: &[u8],
    alg_id: i64,
    kid: Option<&[u8]>,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let env = Envelope::decode(envelope_bytes)?;
    let auth: &AuthWrapper<'_> = env.auth.as_ref().ok_or(Error::BareManifest)?;
    if !auth.digest.matches_data(env.manifest.encoding) {
        return Err(Error::ManifestDigestMismatch);
    }
    if crate::crypto::SigAlg::from_cose(alg_id).is_none() {
        return Err(Error::Unsupported(alloc::format!(
            "signature algorithm {alg_id}"
        )));
    }
    let protected = cose::protected_header(alg_id, None);
    let digest_encoding = auth.digest_encoding();
    let tbs = cose::to_be_signed("Signature1", &protected, None, digest_encoding);
    let signature = sign(&tbs)?;
    let block = cose::encode_sign1(&protected, kid.unwrap_or_default(), None, &signature);

    let mut w = Writer::new();
    w.array(1 + auth.block_count() + 1).bytes(digest_encoding);
    for existing in auth.raw_blocks() {
        w.bytes(existing);
    }
    w.bytes(&block);
    Ok(assemble(
        &w.into_bytes(),
        env.manifest.encoding,
        env.severed.iter().map(|(k, v)| (*k, v.content)),
        env.integrated.iter().map(|p| (p.key, p.data)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Condition, Directive, ReportingPolicy};
    use crate::component::ComponentId;
    use crate::error::Uuid;
    use crate::manifest::LanguageText;
    use crate::params::VersionMatch;

    /// A manifest using every encodable construct; decoding its encoding must give it back.
    #[test]
    fn manifest_round_trips_through_encoding() {
        let digest = DigestAlg::Sha384.digest(b"image");
        let rp = ReportingPolicy(15);
        let params = alloc::vec![
            Parameter::VendorId(VendorId::Uuid(Uuid([1; 16]))),
            Parameter::ClassId(Uuid([2; 16])),
            Parameter::ImageDigest(digest.as_suit_digest()),
            Parameter::ImageSize(5),
            Parameter::UseBefore(1_900_000_000),
            Parameter::Version(VersionMatch {
                comparison: VersionComparison::GreaterEqual,
                version: alloc::vec![1, -1]
            }),
            Parameter::UpdatePriority(-3),
        ];
        let shared = CommandSequence {
            commands: alloc::vec![
                Command::SetComponentIndex(IndexSelection::All),
                Command::OverrideParameters(params),
                Command::Condition(Condition::VendorId, rp),
                Command::TryEach {
                    branches: alloc::vec![
                        CommandSequence {
                            commands: alloc::vec![Command::Condition(Condition::ComponentSlot, rp)]
                        },
                        CommandSequence::default(),
                    ],
                    empty_fallback: true,
                },
            ],
        };
        let install = CommandSequence {
            commands: alloc::vec![
                Command::OverrideMultiple(alloc::vec![(1, alloc::vec![Parameter::Uri("#x")])]),
                Command::SetComponentIndex(IndexSelection::List(alloc::vec![1, 0])),
                Command::CopyParams(alloc::vec![(1, alloc::vec![3, 14])]),
                Command::SetParameters(alloc::vec![
                    Parameter::Content(b"abc"),
                    Parameter::SourceComponent(1)
                ]),
                Command::Directive(Directive::Fetch, ReportingPolicy(2)),
                Command::RunSequence(CommandSequence {
                    commands: alloc::vec![Command::Directive(Directive::Copy, rp)]
                }),
            ],
        };
        let mut text = LanguageText::default();
        text.manifest.insert(1, "description");
        text.components.push((
            ComponentId::new([b"fw"]),
            [(6, "1.2.3")].into_iter().collect(),
        ));
        let m = Manifest {
            sequence_number: 42,
            components: alloc::vec![
                ComponentId::new([b"fw"]),
                ComponentId::new([b"cache" as &[u8], &[0u8]])
            ],
            shared_sequence: Some(shared),
            reference_uri: Some("https://example.com/m.suit"),
            manifest_component_id: None,
            set_version: None,
            validate: Some(CommandSequence {
                commands: alloc::vec![
                    Command::SetComponentIndex(IndexSelection::One(0)),
                    Command::Condition(Condition::ImageMatch, rp)
                ],
            }),
            load: None,
            invoke: None,
            uninstall: None,
            payload_fetch: Severable::Absent,
            install: Severable::Present {
                value: install,
                severed: true,
            },
            candidate_verification: Severable::Absent,
            text: Severable::Present {
                value: TextMap {
                    languages: alloc::vec![("en", text)],
                },
                severed: false,
            },
            coswid: Severable::Absent,
        };
        let encoded = encode_manifest(&m, DigestAlg::Sha256);
        let envelope = build_envelope(
            &encoded,
            &[(String::from("#x"), alloc::vec![9; 3])],
            DigestAlg::Sha256,
        );
        let env = Envelope::decode(&envelope).unwrap();
        assert_eq!(env.integrated("#x"), Some(&[9u8, 9, 9][..]));
        let decoded = Manifest::decode_unauthenticated(&env).unwrap();
        assert_eq!(decoded, m);
    }

    #[test]
    fn signing_refuses_an_envelope_whose_digest_does_not_match() {
        let m = EncodedManifest {
            manifest: alloc::vec![0xa0],
            severed: Vec::new(),
        };
        let mut envelope = build_envelope(&m, &[], DigestAlg::Sha256);
        let last = envelope.len() - 1;
        envelope[last] = 0xa1; // the manifest bstr content changes after the digest was taken
        let key = SigningKey::P256(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap());
        assert_eq!(
            sign_envelope(&envelope, &key, alg::ES256, None).unwrap_err(),
            Error::ManifestDigestMismatch
        );
    }
}
