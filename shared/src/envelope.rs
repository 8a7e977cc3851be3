//! The SUIT envelope (draft-ietf-suit-manifest §8.2): authentication wrapper, manifest bytes,
//! severed members and integrated payloads. Decoding the envelope does not look inside the
//! manifest: that happens only after authentication ([`crate::suit`]).
//!
//! Accepted outer forms: `#6.107(SUIT_Envelope)` (the normal case), an untagged
//! `SUIT_Envelope` — because TEEP (RFC 9397) and libcsuit carry envelopes without the tag, and
//! the tag adds no security — and `#6.1070(SUIT_Manifest)`, a bare manifest that can be
//! inspected but never authenticated.

use alloc::vec::Vec;

use minicbor::data::Type;

use crate::auth::AuthWrapper;
use crate::cbor::{Key, Reader};
use crate::error::{Error, Result};

/// CBOR tag of SUIT_Envelope_Tagged.
pub const TAG_ENVELOPE: u64 = 107;
/// CBOR tag of SUIT_Manifest_Tagged.
pub const TAG_MANIFEST: u64 = 1070;

/// Envelope keys (§11.1 and extensions).
pub mod key {
    /// Delegation (reserved).
    pub const DELEGATION: i64 = 1;
    /// Authentication wrapper.
    pub const AUTHENTICATION: i64 = 2;
    /// Manifest.
    pub const MANIFEST: i64 = 3;
    /// Severed CoSWID (update-management).
    pub const COSWID: i64 = 14;
    /// Severed dependency-resolution (trust-domains).
    pub const DEPENDENCY_RESOLUTION: i64 = 15;
    /// Severed payload-fetch.
    pub const PAYLOAD_FETCH: i64 = 16;
    /// Install before draft -29.
    pub const LEGACY_INSTALL: i64 = 17;
    /// Severed candidate-verification (trust-domains).
    pub const CANDIDATE_VERIFICATION: i64 = 18;
    /// Severed install.
    pub const INSTALL: i64 = 20;
    /// Severed text.
    pub const TEXT: i64 = 23;
}

/// A byte string element kept both as content and as its complete encoding (digests over
/// "bstr-wrapped" elements include the bstr header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wrapped<'a> {
    /// The bytes inside the bstr.
    pub content: &'a [u8],
    /// The bstr header and content.
    pub encoding: &'a [u8],
}

/// A payload carried inside the envelope under a text key (e.g. `"#fw"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegratedPayload<'a> {
    /// The envelope key, a URI fragment reference.
    pub key: &'a str,
    /// The payload bytes.
    pub data: &'a [u8],
}

/// How the input was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `#6.107(SUIT_Envelope)`.
    TaggedEnvelope,
    /// `SUIT_Envelope` without tag.
    UntaggedEnvelope,
    /// `#6.1070(SUIT_Manifest)`: no envelope, no authentication.
    BareManifest,
}

/// A decoded envelope. Nothing in it is authenticated yet.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// How the input was framed.
    pub framing: Framing,
    /// The authentication wrapper (absent only for a bare manifest).
    pub auth: Option<AuthWrapper<'a>>,
    /// The manifest; for a bare manifest `encoding` equals `content` (no bstr around it).
    pub manifest: Wrapped<'a>,
    /// Severed members by envelope key (14, 15, 16, 18, 20, 23; 17 from drafts before -29,
    /// kept so that authentication still works and the manifest decoder can explain).
    pub severed: Vec<(i64, Wrapped<'a>)>,
    /// Integrated payloads.
    pub integrated: Vec<IntegratedPayload<'a>>,
}

impl<'a> Envelope<'a> {
    /// Decodes an envelope (or bare manifest) that must fill `bytes` exactly.
    pub fn decode(bytes: &'a [u8]) -> Result<Self> {
        Reader::decode_exact(bytes, "envelope", |r| {
            let framing = match r.datatype()? {
                Type::Tag => match r.tag()? {
                    TAG_ENVELOPE => Framing::TaggedEnvelope,
                    TAG_MANIFEST => Framing::BareManifest,
                    _ => {
                        return Err(Error::NotSuit {
                            found: "another CBOR tag",
                        })
                    }
                },
                Type::Map => Framing::UntaggedEnvelope,
                _ => {
                    return Err(Error::NotSuit {
                        found: "a CBOR item that is neither a tag nor a map",
                    })
                }
            };
            if framing == Framing::BareManifest {
                let encoding = r.raw_item()?;
                return Ok(Envelope {
                    framing,
                    auth: None,
                    manifest: Wrapped {
                        content: encoding,
                        encoding,
                    },
                    severed: Vec::new(),
                    integrated: Vec::new(),
                });
            }
            Self::decode_map(r, framing)
        })
    }

    fn decode_map(r: &mut Reader<'a>, framing: Framing) -> Result<Self> {
        let mut entries = r.map()?;
        let mut auth = None;
        let mut manifest = None;
        let mut severed = Vec::new();
        let mut integrated = Vec::new();
        while entries.next_entry() {
            match r.map_key(&mut entries)? {
                Key::Int(key::AUTHENTICATION) => {
                    auth = Some(AuthWrapper::decode(r.bytes()?)?);
                }
                Key::Int(key::MANIFEST) => {
                    if auth.is_none() {
                        return Err(Error::InvalidValue {
                            context: "envelope",
                            element: "manifest",
                            reason: "the authentication wrapper must precede the manifest (§8.3)",
                        });
                    }
                    let (content, encoding) = r.bytes_with_encoding()?;
                    manifest = Some(Wrapped { content, encoding });
                }
                Key::Int(
                    k @ (key::COSWID
                    | key::LEGACY_INSTALL
                    | key::DEPENDENCY_RESOLUTION
                    | key::PAYLOAD_FETCH
                    | key::CANDIDATE_VERIFICATION
                    | key::INSTALL
                    | key::TEXT),
                ) => {
                    let (content, encoding) = r.bytes_with_encoding()?;
                    severed.push((k, Wrapped { content, encoding }));
                }
                Key::Int(key::DELEGATION) => {
                    return Err(Error::Unsupported(
                        "delegation chains (envelope key 1)".into(),
                    ))
                }
                Key::Int(other) => {
                    return Err(Error::Unsupported(alloc::format!(
                        "unknown envelope element {other}"
                    )))
                }
                Key::Text(key) => integrated.push(IntegratedPayload {
                    key,
                    data: r.bytes()?,
                }),
                Key::Other(_) => {
                    return Err(Error::InvalidValue {
                        context: "envelope",
                        element: "key",
                        reason: "envelope keys are integers or text strings",
                    })
                }
            }
        }
        let auth = auth.ok_or(Error::MissingElement {
            context: "envelope",
            element: "authentication-wrapper",
        })?;
        let manifest = manifest.ok_or(Error::MissingElement {
            context: "envelope",
            element: "manifest",
        })?;
        Ok(Envelope {
            framing,
            auth: Some(auth),
            manifest,
            severed,
            integrated,
        })
    }

    /// The severed member stored under `key`, if the envelope carries one.
    pub fn severed(&self, key: i64) -> Option<Wrapped<'a>> {
        self.severed
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, w)| *w)
    }

    /// The integrated payload referenced by `uri` (`"#name"` or the bare key).
    pub fn integrated(&self, uri: &str) -> Option<&'a [u8]> {
        self.integrated
            .iter()
            .find(|p| p.key == uri)
            .map(|p| p.data)
    }
}
