//! The SUIT manifest model (draft-ietf-suit-manifest §8.4) and its decoding.
//!
//! A [`Manifest`] can only be obtained from an authenticated envelope
//! ([`Manifest::authenticate`]) or, for inspection only, from an unauthenticated one
//! ([`Manifest::decode_unauthenticated`]): nothing inside the manifest bytes is parsed before
//! the authentication wrapper has been verified (§6.2).

use alloc::vec::Vec;

use crate::auth::{AnchorPolicy, AuthWrapper, Authenticated, TrustAnchor};
use crate::cbor::Reader;
use crate::command::{CommandSequence, SequenceRules};
use crate::component::ComponentId;
use crate::digest::SuitDigest;
use crate::envelope::{self, Envelope, Framing};
use crate::error::{Error, Result};

mod common;
mod elements;
mod text;

use common::decode_common;
use elements::{resolve_severable, RawElements};
pub use text::{ComponentText, LanguageText, TextMap};

/// Most components a manifest may declare.
pub const MAX_COMPONENTS: usize = 32;

/// Manifest element keys.
pub mod key {
    /// Manifest version.
    pub const VERSION: i64 = 1;
    /// Sequence number.
    pub const SEQUENCE_NUMBER: i64 = 2;
    /// Common.
    pub const COMMON: i64 = 3;
    /// Reference URI.
    pub const REFERENCE_URI: i64 = 4;
    /// Manifest component id (trust-domains).
    pub const MANIFEST_COMPONENT_ID: i64 = 5;
    /// Set version (update-management).
    pub const SET_VERSION: i64 = 6;
    /// Validate.
    pub const VALIDATE: i64 = 7;
    /// Load.
    pub const LOAD: i64 = 8;
    /// Invoke.
    pub const INVOKE: i64 = 9;
    /// CoSWID (update-management).
    pub const COSWID: i64 = 14;
    /// Dependency resolution (trust-domains).
    pub const DEPENDENCY_RESOLUTION: i64 = 15;
    /// Payload fetch.
    pub const PAYLOAD_FETCH: i64 = 16;
    /// Install before draft -29.
    pub const LEGACY_INSTALL: i64 = 17;
    /// Candidate verification (trust-domains).
    pub const CANDIDATE_VERIFICATION: i64 = 18;
    /// Install.
    pub const INSTALL: i64 = 20;
    /// Text.
    pub const TEXT: i64 = 23;
    /// Uninstall (trust-domains).
    pub const UNINSTALL: i64 = 24;
}

/// A severable element after resolving it against the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Severable<'a, T> {
    /// Not in the manifest at all.
    Absent,
    /// Available: inline, or severed and found in the envelope with a matching digest.
    Present {
        /// The decoded element.
        value: T,
        /// Whether it came from the envelope (severed).
        severed: bool,
    },
    /// Severed and not carried by the envelope: only its digest is known.
    Severed(SuitDigest<'a>),
}

impl<T> Severable<'_, T> {
    /// The element if available.
    pub fn get(&self) -> Option<&T> {
        match self {
            Severable::Present { value, .. } => Some(value),
            _ => None,
        }
    }
}

fn invalid(context: &'static str, element: &'static str, reason: &'static str) -> Error {
    Error::InvalidValue {
        context,
        element,
        reason,
    }
}

/// A decoded SUIT manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest<'a> {
    /// suit-manifest-sequence-number.
    pub sequence_number: u64,
    /// suit-components.
    pub components: Vec<ComponentId>,
    /// suit-shared-sequence.
    pub shared_sequence: Option<CommandSequence<'a>>,
    /// suit-reference-uri.
    pub reference_uri: Option<&'a str>,
    /// suit-manifest-component-id.
    pub manifest_component_id: Option<ComponentId>,
    /// suit-set-version, as its raw encoding.
    pub set_version: Option<&'a [u8]>,
    /// suit-validate.
    pub validate: Option<CommandSequence<'a>>,
    /// suit-load.
    pub load: Option<CommandSequence<'a>>,
    /// suit-invoke.
    pub invoke: Option<CommandSequence<'a>>,
    /// suit-uninstall.
    pub uninstall: Option<CommandSequence<'a>>,
    /// suit-payload-fetch.
    pub payload_fetch: Severable<'a, CommandSequence<'a>>,
    /// suit-install.
    pub install: Severable<'a, CommandSequence<'a>>,
    /// suit-candidate-verification.
    pub candidate_verification: Severable<'a, CommandSequence<'a>>,
    /// suit-text.
    pub text: Severable<'a, TextMap<'a>>,
    /// suit-coswid (raw).
    pub coswid: Severable<'a, &'a [u8]>,
}

/// An authenticated manifest together with its envelope.
#[derive(Debug, Clone)]
pub struct Authentic<'a> {
    /// The envelope it came from (integrated payloads live here).
    pub envelope: Envelope<'a>,
    /// The manifest.
    pub manifest: Manifest<'a>,
    /// Which block and anchor authenticated it.
    pub authenticated: Authenticated,
}

/// An envelope that authenticated, kept in memory: what the TA holds from LOAD_MANIFEST to
/// COMMIT. Only [`AuthenticEnvelope::authenticate`] makes one and its bytes never change, so
/// [`AuthenticEnvelope::open`] decodes the manifest again without verifying the signature again.
///
/// Why decode again at all: COMMIT re-runs the manifest over the digests the TA computed
/// (DESIGN.md §4), and the processor works on the borrowed model ([`Authentic`]), which cannot
/// outlive the command that decoded it without making the session self-referential. Decoding is
/// a walk over CBOR already checked once; the signature verification it spares is the costly
/// part.
#[derive(Debug, Clone)]
pub struct AuthenticEnvelope {
    bytes: Vec<u8>,
    authenticated: Authenticated,
}

impl AuthenticEnvelope {
    /// Authenticates the envelope `bytes` against `anchors` under `policy`
    /// ([`Manifest::authenticate_with`]) and gives the authentic manifest to `inspect`; keeps
    /// the bytes when both succeed.
    pub fn authenticate<T, E: From<Error>>(
        bytes: Vec<u8>,
        anchors: &[TrustAnchor],
        policy: AnchorPolicy,
        inspect: impl FnOnce(&Authentic<'_>) -> core::result::Result<T, E>,
    ) -> core::result::Result<(Self, T), E> {
        let authentic = Manifest::authenticate_with(&bytes, anchors, policy)?;
        let value = inspect(&authentic)?;
        let authenticated = authentic.authenticated;
        Ok((
            AuthenticEnvelope {
                bytes,
                authenticated,
            },
            value,
        ))
    }

    /// The authentic manifest, decoded again from the kept bytes (the signature is not
    /// verified again: it was, by [`AuthenticEnvelope::authenticate`]).
    pub fn open(&self) -> Result<Authentic<'_>> {
        Manifest::decode_authentic(&self.bytes, |_, _| Ok(self.authenticated))
    }
}

impl<'a> Manifest<'a> {
    /// Decodes an envelope, authenticates it against `anchors` and only then decodes the
    /// manifest.
    pub fn authenticate(bytes: &'a [u8], anchors: &[TrustAnchor]) -> Result<Authentic<'a>> {
        Manifest::authenticate_with(bytes, anchors, AnchorPolicy::AnyOne)
    }

    /// [`Manifest::authenticate`] under an anchor policy (e.g. every anchor must sign).
    pub fn authenticate_with(
        bytes: &'a [u8],
        anchors: &[TrustAnchor],
        policy: AnchorPolicy,
    ) -> Result<Authentic<'a>> {
        Manifest::decode_authentic(bytes, |auth, encoding| {
            auth.authenticate_with(encoding, anchors, policy)
        })
    }

    /// Decodes the envelope `bytes`, lets `authenticate` say which anchor vouches for its
    /// manifest (`encoding`: the bstr-wrapped manifest) and only then decodes the manifest.
    fn decode_authentic(
        bytes: &'a [u8],
        authenticate: impl FnOnce(&AuthWrapper<'a>, &'a [u8]) -> Result<Authenticated>,
    ) -> Result<Authentic<'a>> {
        let envelope = Envelope::decode(bytes)?;
        let auth = match (&envelope.framing, &envelope.auth) {
            (Framing::BareManifest, _) | (_, None) => return Err(Error::BareManifest),
            (_, Some(auth)) => auth,
        };
        let authenticated = authenticate(auth, envelope.manifest.encoding)?;
        let manifest = Manifest::decode(&envelope)?;
        Ok(Authentic {
            envelope,
            manifest,
            authenticated,
        })
    }

    /// Decodes the manifest of an envelope WITHOUT authenticating it — for inspection tools
    /// only; never act on the result.
    pub fn decode_unauthenticated(envelope: &Envelope<'a>) -> Result<Self> {
        Manifest::decode(envelope)
    }

    /// Like [`Manifest::decode_unauthenticated`], but a manifest with dependencies
    /// (trust-domains) decodes too, with what it says about them: for showing an envelope,
    /// never for processing it (which refuses dependencies).
    pub fn decode_for_inspection(envelope: &Envelope<'a>) -> Result<(Self, Dependencies<'a>)> {
        Manifest::decode_with(envelope, true)
    }

    fn decode(envelope: &Envelope<'a>) -> Result<Self> {
        Manifest::decode_with(envelope, false).map(|(m, _)| m)
    }

    fn decode_with(envelope: &Envelope<'a>, inspect: bool) -> Result<(Self, Dependencies<'a>)> {
        // First pass: raw elements by key, so that the version is checked before anything else
        // is interpreted (§6.1).
        let raw = RawElements::decode(envelope.manifest.content)?;
        let uint = |k: i64, name: &'static str| -> Result<Option<u64>> {
            raw.get(k)
                .map(|b| Reader::decode_exact(b, name, |r| r.u64()))
                .transpose()
        };
        let version = uint(key::VERSION, "manifest version")?.ok_or(Error::MissingElement {
            context: "manifest",
            element: "manifest-version",
        })?;
        if version != 1 {
            return Err(Error::UnsupportedManifestVersion(version));
        }
        let sequence_number = uint(key::SEQUENCE_NUMBER, "manifest sequence number")?.ok_or(
            Error::MissingElement {
                context: "manifest",
                element: "manifest-sequence-number",
            },
        )?;
        if raw.contains_key(key::LEGACY_INSTALL) {
            return Err(Error::LegacyInstallKey("manifest"));
        }
        if envelope.severed(envelope::key::LEGACY_INSTALL).is_some() {
            return Err(Error::LegacyInstallKey("envelope"));
        }
        if let Some(k) = raw.keys().find(|k| !KNOWN_MANIFEST_KEYS.contains(k)) {
            return Err(Error::Unsupported(alloc::format!("manifest element {k}")));
        }

        let common = raw.get(key::COMMON).ok_or(Error::MissingElement {
            context: "manifest",
            element: "common",
        })?;
        let (components, shared_raw, dependency_components) = decode_common(common, inspect)?;
        // Commands may select a dependency by its index, which may lie past the components.
        let n = dependency_components
            .iter()
            .filter_map(|(i, _)| usize::try_from(*i).ok()?.checked_add(1))
            .fold(components.len(), usize::max);
        let rules = SequenceRules {
            components: n,
            shared: false,
            dependencies: inspect,
        };
        let shared_sequence = shared_raw
            .map(|b| {
                checked_sequence(
                    b,
                    "shared sequence",
                    SequenceRules {
                        components: n,
                        shared: true,
                        dependencies: inspect,
                    },
                )
            })
            .transpose()?;

        let inline = |k: i64, name: &'static str| -> Result<Option<CommandSequence<'a>>> {
            raw.get(k)
                .map(|b| {
                    Reader::decode_exact(b, name, |r| r.bytes())
                        .and_then(|seq| checked_sequence(seq, name, rules))
                })
                .transpose()
        };
        let text_str = |k: i64, name: &'static str| -> Result<Option<&'a str>> {
            raw.get(k)
                .map(|b| Reader::decode_exact(b, name, |r| r.str()))
                .transpose()
        };
        let severable =
            |k: i64, name: &'static str| resolve_severable(raw.get(k), envelope, k, name);

        let manifest_component_id = raw
            .get(key::MANIFEST_COMPONENT_ID)
            .map(|b| Reader::decode_exact(b, "manifest component id", ComponentId::decode))
            .transpose()?;
        let has_resolution = raw.contains_key(key::DEPENDENCY_RESOLUTION)
            || envelope
                .severed(envelope::key::DEPENDENCY_RESOLUTION)
                .is_some();
        if has_resolution && !inspect {
            return Err(Error::DependenciesNotSupported(
                "dependency-resolution sequence",
            ));
        }
        let dependencies = Dependencies {
            components: dependency_components,
            resolution: severable(key::DEPENDENCY_RESOLUTION, "dependency-resolution")?
                .map(|b| checked_sequence(b, "dependency-resolution", rules))?,
        };
        // Envelope members the manifest does not declare severed are refused by resolve_severable;
        // this catches those whose manifest key is absent altogether.
        let resolution = (key::DEPENDENCY_RESOLUTION, "dependency-resolution");
        for (k, name) in SEVERABLE.into_iter().chain([resolution]) {
            if !raw.contains_key(k) && envelope.severed(k).is_some() {
                return Err(Error::UnexpectedSeveredElement(name));
            }
        }

        let manifest = Manifest {
            sequence_number,
            components,
            shared_sequence,
            reference_uri: text_str(key::REFERENCE_URI, "reference URI")?,
            manifest_component_id,
            set_version: raw.get(key::SET_VERSION),
            validate: inline(key::VALIDATE, "validate")?,
            load: inline(key::LOAD, "load")?,
            invoke: inline(key::INVOKE, "invoke")?,
            uninstall: inline(key::UNINSTALL, "uninstall")?,
            payload_fetch: severable(key::PAYLOAD_FETCH, "payload-fetch")?
                .map(|b| checked_sequence(b, "payload-fetch", rules))?,
            install: severable(key::INSTALL, "install")?
                .map(|b| checked_sequence(b, "install", rules))?,
            candidate_verification: severable(
                key::CANDIDATE_VERIFICATION,
                "candidate-verification",
            )?
            .map(|b| checked_sequence(b, "candidate-verification", rules))?,
            text: severable(key::TEXT, "text")?.map(TextMap::decode)?,
            coswid: severable(key::COSWID, "coswid")?.map(Ok)?,
        };
        Ok((manifest, dependencies))
    }

    /// Number of components.
    pub fn component_count(&self) -> usize {
        self.components.len()
    }

    /// Checks every severed member `envelope` carries against its digest in the manifest and
    /// refuses members the manifest does not sever; reads nothing else of the manifest. For an
    /// authenticated envelope this makes every member it carries authentic.
    pub fn check_severed_members(
        envelope: &Envelope<'a>,
    ) -> Result<Vec<(&'static str, SeveredMember)>> {
        let raw = RawElements::decode(envelope.manifest.content)?;
        let mut members = Vec::new();
        for (k, name) in SEVERABLE
            .into_iter()
            .chain([(key::DEPENDENCY_RESOLUTION, "dependency-resolution")])
        {
            if !raw.contains_key(k) && envelope.severed(k).is_some() {
                return Err(Error::UnexpectedSeveredElement(name));
            }
            let member = match resolve_severable(raw.get(k), envelope, k, name)? {
                Severable::Absent => continue,
                Severable::Present { severed: false, .. } => SeveredMember::Inline,
                Severable::Present { severed: true, .. } => SeveredMember::Present,
                Severable::Severed(_) => SeveredMember::Stripped,
            };
            members.push((name, member));
        }
        Ok(members)
    }
}

/// Where a severable element of a manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeveredMember {
    /// Inside the manifest, not severed.
    Inline,
    /// Severed and carried by the envelope with a matching digest.
    Present,
    /// Severed and left out of the envelope (stripped, as §8.4 permits): only its digest is
    /// known.
    Stripped,
}

const KNOWN_MANIFEST_KEYS: [i64; 16] = [
    key::VERSION,
    key::SEQUENCE_NUMBER,
    key::COMMON,
    key::REFERENCE_URI,
    key::MANIFEST_COMPONENT_ID,
    key::SET_VERSION,
    key::VALIDATE,
    key::LOAD,
    key::INVOKE,
    key::COSWID,
    key::DEPENDENCY_RESOLUTION,
    key::PAYLOAD_FETCH,
    key::CANDIDATE_VERIFICATION,
    key::INSTALL,
    key::TEXT,
    key::UNINSTALL,
];

const SEVERABLE: [(i64, &str); 5] = [
    (key::COSWID, "coswid"),
    (key::PAYLOAD_FETCH, "payload-fetch"),
    (key::CANDIDATE_VERIFICATION, "candidate-verification"),
    (key::INSTALL, "install"),
    (key::TEXT, "text"),
];

impl<'a, T> Severable<'a, T> {
    fn map<U>(self, f: impl FnOnce(T) -> Result<U>) -> Result<Severable<'a, U>> {
        Ok(match self {
            Severable::Absent => Severable::Absent,
            Severable::Severed(d) => Severable::Severed(d),
            Severable::Present { value, severed } => Severable::Present {
                value: f(value)?,
                severed,
            },
        })
    }
}

fn checked_sequence<'a>(
    bytes: &'a [u8],
    name: &'static str,
    rules: SequenceRules,
) -> Result<CommandSequence<'a>> {
    let seq = CommandSequence::decode(bytes, name, rules)?;
    // §6.2: with more than one component every sequence begins with set-component-index
    // (override-multiple is its encoding alias, update-management §5.3).
    if rules.components > 1 {
        use crate::command::Command;
        match seq.commands.first() {
            Some(Command::SetComponentIndex(_) | Command::OverrideMultiple(_)) | None => {}
            Some(_) => return Err(Error::ComponentIndexNotSet(name)),
        }
    }
    Ok(seq)
}

/// What a manifest says about dependencies (trust-domains). Only
/// [`Manifest::decode_for_inspection`] yields it: processing refuses dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependencies<'a> {
    /// suit-dependencies in suit-common: component index → its SUIT_Dependency_Metadata, as
    /// encoded.
    pub components: Vec<(u64, &'a [u8])>,
    /// suit-dependency-resolution.
    pub resolution: Severable<'a, CommandSequence<'a>>,
}
