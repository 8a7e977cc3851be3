//! What an error says on the ABI: the code of its message and its arguments
//! ([`crate::abi::rejection`]), the arguments of the values it carries, and its text rendered
//! from them.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::{Error, IdValue, MapKey, Uuid};
use crate::abi::rejection::Arg;

impl Uuid {
    /// As a rejection argument.
    pub fn arg(&self) -> Arg {
        Arg::Bytes(self.0.to_vec())
    }
}

impl Error {
    /// The code of this error's message and its arguments: what a rejection carries on the
    /// ABI instead of text ([`crate::abi::rejection`]).
    pub fn wire(&self) -> (u16, Vec<Arg>) {
        use crate::abi::rejection::code as c;
        use Error::*;
        let t = Arg::text;
        let n = Arg::size;
        match self {
            Cbor {
                context,
                offset,
                expected,
            } => (c::CBOR, vec![n(*offset), t(context), t(expected)]),
            TrailingBytes { context, count } => (c::TRAILING_BYTES, vec![t(context), n(*count)]),
            IndefiniteLength { context, offset } => {
                (c::INDEFINITE_LENGTH, vec![n(*offset), t(context)])
            }
            DuplicateKey { context, key } => (c::DUPLICATE_KEY, vec![key.arg(), t(context)]),
            MissingElement { context, element } => {
                (c::MISSING_ELEMENT, vec![t(context), t(element)])
            }
            InvalidValue {
                context,
                element,
                reason,
            } => (c::INVALID_VALUE, vec![t(element), t(context), t(reason)]),
            NotSuit { found } => (c::NOT_SUIT, vec![t(found)]),
            UnsupportedManifestVersion(v) => (c::UNSUPPORTED_MANIFEST_VERSION, vec![Arg::Uint(*v)]),
            LegacyInstallKey(s) => (c::LEGACY_INSTALL_KEY, vec![t(s)]),
            SeveredElementAbsent(s) => (c::SEVERED_ELEMENT_ABSENT, vec![t(s)]),
            UnexpectedSeveredElement(s) => (c::UNEXPECTED_SEVERED_ELEMENT, vec![t(s)]),
            ForbiddenInSharedSequence(s) => (c::FORBIDDEN_IN_SHARED_SEQUENCE, vec![t(s)]),
            ComponentIndexNotSet(s) => (c::COMPONENT_INDEX_NOT_SET, vec![t(s)]),
            ComponentIndexOutOfRange { index, count } => (
                c::COMPONENT_INDEX_OUT_OF_RANGE,
                vec![Arg::Uint(*index), n(*count)],
            ),
            SoftFailureOutsideScope => (c::SOFT_FAILURE_OUTSIDE_SCOPE, vec![]),
            ParameterUnset {
                command,
                parameter,
                component,
            } => (
                c::PARAMETER_UNSET,
                vec![t(command), n(*component), t(parameter)],
            ),
            IntegratedPayloadMissing(s) => (c::INTEGRATED_PAYLOAD_MISSING, vec![t(s)]),
            NoAuthenticationBlock => (c::NO_AUTHENTICATION_BLOCK, vec![]),
            BareManifest => (c::BARE_MANIFEST, vec![]),
            ManifestDigestMismatch => (c::MANIFEST_DIGEST_MISMATCH, vec![]),
            InvalidAuthenticationBlock { index, reason } => {
                (c::INVALID_AUTHENTICATION_BLOCK, vec![n(*index), t(reason)])
            }
            NotAuthenticated(s) => (c::NOT_AUTHENTICATED, vec![t(s)]),
            UnsupportedDigestAlgorithm(id) => {
                (c::UNSUPPORTED_DIGEST_ALGORITHM, vec![Arg::Int(*id)])
            }
            VendorMismatch {
                component,
                expected,
                actual,
            } => (
                c::VENDOR_MISMATCH,
                vec![n(*component), expected.arg(), actual.arg()],
            ),
            ClassMismatch {
                component,
                expected,
                actual,
            } => (
                c::CLASS_MISMATCH,
                vec![n(*component), expected.arg(), actual.arg()],
            ),
            DeviceMismatch {
                component,
                expected,
            } => (c::DEVICE_MISMATCH, vec![n(*component), expected.arg()]),
            ConditionFailed {
                condition,
                component,
                detail,
            } => (
                c::CONDITION_FAILED,
                vec![t(condition), n(*component), t(detail)],
            ),
            Aborted => (c::ABORTED, vec![]),
            Rollback { sequence, floor } => {
                (c::ROLLBACK, vec![Arg::Uint(*sequence), Arg::Uint(*floor)])
            }
            ImageDigestMismatch { component } => (c::IMAGE_DIGEST_MISMATCH, vec![n(*component)]),
            ImageNotMatchFailed { component } => (c::IMAGE_NOT_MATCH_FAILED, vec![n(*component)]),
            ContentMismatch { component } => (c::CONTENT_MISMATCH, vec![n(*component)]),
            SeveredDigestMismatch(s) => (c::SEVERED_DIGEST_MISMATCH, vec![t(s)]),
            ImageSizeMismatch {
                component,
                expected,
                actual,
            } => (
                c::IMAGE_SIZE_MISMATCH,
                vec![n(*component), Arg::Uint(*expected), Arg::Uint(*actual)],
            ),
            PayloadTooLarge { component, limit } => {
                (c::PAYLOAD_TOO_LARGE, vec![n(*component), Arg::Uint(*limit)])
            }
            Decryption(s) => (c::DECRYPTION, vec![t(s)]),
            InvalidEncryptionInfo(s) => (c::INVALID_ENCRYPTION_INFO, vec![t(s)]),
            NoDecryptionKey(s) => (c::NO_DECRYPTION_KEY, vec![t(s)]),
            KeyUnwrapFailed => (c::KEY_UNWRAP_FAILED, vec![]),
            CiphertextTruncated => (c::CIPHERTEXT_TRUNCATED, vec![]),
            TagMismatch => (c::TAG_MISMATCH, vec![]),
            Unsupported(s) => (c::UNSUPPORTED, vec![t(s)]),
            AnchorSet(s) => (c::ANCHOR_SET, vec![t(s)]),
            AnchorKey { alg, error } => {
                let (inner, args) = error.wire();
                (c::ANCHOR_KEY, vec![t(alg), Arg::Message(inner, args)])
            }
            UnknownCommand(id) => (c::UNKNOWN_COMMAND, vec![Arg::Int(*id)]),
            UnknownParameter(id) => (c::UNKNOWN_PARAMETER, vec![Arg::Int(*id)]),
            DependenciesNotSupported(s) => (c::DEPENDENCIES_NOT_SUPPORTED, vec![t(s)]),
            UnsupportedEncryptionAlgorithm {
                role,
                id,
                supported,
            } => (
                c::UNSUPPORTED_ENCRYPTION_ALGORITHM,
                vec![t(role), Arg::Int(*id), t(supported)],
            ),
            UnauthenticatedEncryptionWithoutDigest { component } => (
                c::UNAUTHENTICATED_ENCRYPTION_WITHOUT_DIGEST,
                vec![n(*component)],
            ),
            LimitExceeded { what, limit } => (c::LIMIT_EXCEEDED, vec![t(what), n(*limit)]),
            Io(s) => (c::IO, vec![t(s)]),
            RandomnessUnavailable => (c::RANDOMNESS_UNAVAILABLE, vec![]),
            UnreadableRejection {
                category,
                code,
                reason,
            } => (
                c::UNREADABLE_REJECTION,
                vec![Arg::Uint(*category), Arg::Uint(*code), t(reason)],
            ),
        }
    }
}

/// Renders a message from its code and arguments ([`crate::abi::rejection::TEMPLATES`]).
pub(crate) fn render_wire(code: u16, args: &[Arg], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    crate::abi::rejection::render(code, args, f).map_err(|_| fmt::Error)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, args) = self.wire();
        render_wire(code, &args, f)
    }
}

impl MapKey {
    /// As a rejection argument.
    pub fn arg(&self) -> Arg {
        match self {
            MapKey::Int(i) if *i >= 0 => Arg::Uint(i.unsigned_abs()),
            MapKey::Int(i) => Arg::Int(*i),
            MapKey::Text(t) => Arg::Text(t.clone()),
            MapKey::Other(b) => Arg::Bytes(b.clone()),
        }
    }
}

impl IdValue {
    /// As a rejection argument.
    pub fn arg(&self) -> Arg {
        match self {
            IdValue::Uuid(u) => u.arg(),
            IdValue::Pen(p) => Arg::Pen(p.clone()),
        }
    }
}
