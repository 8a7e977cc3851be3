//! SUIT reports (draft-ietf-suit-report): what happened to one update attempt, signed by the
//! TA with the device key so that the agent — which forwards them — cannot forge them.
//!
//! # Format
//!
//! A tagged COSE_Sign1 exactly like an approval token ([`crate::token`]: ES384, kid = SHA-256
//! of the device public key, attached payload) but with the protected content type
//! [`CONTENT_TYPE`], so that a report can never pass for a token nor the reverse. The payload:
//!
//! ```cddl
//! SUIT_Report = {
//!   99: [manifest-uri: tstr, manifest-digest: SUIT_Digest],   ; suit-reference
//!   ? 2: bstr,                                                 ; nonce from the agent/server
//!   3: [],                                                     ; records (none kept)
//!   4: true / {5: result-code, 6: SUIT_Record, 7: reason},     ; result
//! }
//! SUIT_Record = [manifest-id: [], section: int, offset: 0, component-index: uint, {}]
//! ```
//!
//! A failure's record says where the manifest's processing stopped
//! ([`crate::processor::Location`]): `section` is the SUIT_Manifest key of the sequence that
//! was running (suit-common's, 3, for the shared sequence; 0 when the failure was not in a
//! sequence, e.g. a payload refused while it streamed), `component-index` the component the
//! failing command ran for (or the refused payload's). The section offset is not tracked
//! (always 0).
//!
//! The result code is the rejection's [`Category::code`], [`TRIAL_FAILED`] for an install
//! whose trial boot failed and was rolled back, [`INCOMPLETE`] for an attempt that never
//! reached COMMIT, or [`PENDING`] for a committed install whose trial boot has not confirmed
//! it yet. Success means confirmed (trial boot), never merely committed. The manifest URI is
//! the manifest's reference-uri once the envelope authenticated (empty when it has none or
//! did not authenticate: the TA never signs what an unauthenticated envelope claims; the
//! digest is then that of the raw input).

use alloc::string::String;
use alloc::vec::Vec;

use crate::cbor::{Key, Reader, Writer};
use crate::crypto::PrivateKey;
use crate::digest::{DigestAlg, DigestValue, SuitDigest};
use crate::error::{Category, Error, Result};
use crate::token::{open_device_signed, sign_with_device_key};

/// Protected content type of a signed report.
pub const CONTENT_TYPE: &str = "application/suit-report+cose";
/// Result code of an install whose trial boot failed (it was rolled back).
pub const TRIAL_FAILED: i64 = 100;
/// Result code of an attempt that was planned but never committed (abandoned or failed in the
/// normal world, e.g. a write that did not read back).
pub const INCOMPLETE: i64 = 101;
/// Result code of an install that is committed but whose trial boot has not been confirmed
/// yet ([`ReportResult::Pending`]; SUIT_Report has no "pending" result of its own).
pub const PENDING: i64 = 102;

/// SUIT_Report_Reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 1: the CBOR did not parse.
    CborParse,
    /// 4: not authorised (authentication failed).
    Unauthorised,
    /// 5: a command is not supported.
    CommandUnsupported,
    /// 10: a condition failed.
    ConditionFailed,
    /// 11: an operation failed.
    OperationFailed,
}

impl Reason {
    /// The registered value.
    pub fn code(self) -> u64 {
        match self {
            Reason::CborParse => 1,
            Reason::Unauthorised => 4,
            Reason::CommandUnsupported => 5,
            Reason::ConditionFailed => 10,
            Reason::OperationFailed => 11,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        [
            Reason::CborParse,
            Reason::Unauthorised,
            Reason::CommandUnsupported,
            Reason::ConditionFailed,
            Reason::OperationFailed,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// The reason a rejection of `category` gets.
    pub fn of(category: Category) -> Self {
        match category {
            Category::Malformed => Reason::CborParse,
            Category::Authentication => Reason::Unauthorised,
            Category::Policy => Reason::CommandUnsupported,
            Category::Applicability | Category::Rollback | Category::Digest | Category::Size => {
                Reason::ConditionFailed
            }
            Category::Decryption | Category::Resource => Reason::OperationFailed,
        }
    }
}

/// How the attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportResult {
    /// It succeeded: the trial boot of the install was confirmed.
    Success,
    /// Committed; the trial boot has yet to confirm it. Encoded as a result map with code
    /// [`PENDING`] and reason "operation failed" (not finished), section 0, component 0.
    Pending,
    /// It failed.
    Failure {
        /// [`Category::code`] of the rejection, or [`TRIAL_FAILED`].
        code: i64,
        /// The SUIT reason.
        reason: Reason,
        /// Manifest key of the sequence where it failed (3 for the shared sequence), 0 when
        /// not in one.
        section: i64,
        /// Component index concerned (0 when not one).
        component: u64,
    },
}

/// A SUIT report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The manifest's reference-uri (empty if none).
    pub manifest_uri: String,
    /// Digest of the manifest (of the envelope bytes when no manifest could be found).
    pub manifest_digest: DigestValue,
    /// Nonce the agent asked to include (freshness for a server).
    pub nonce: Option<Vec<u8>>,
    /// The outcome.
    pub result: ReportResult,
}

impl Report {
    /// The SUIT_Report encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.map(3 + usize::from(self.nonce.is_some()));
        if let Some(n) = &self.nonce {
            w.u64(2).bytes(n);
        }
        w.u64(3).array(0).u64(4);
        match &self.result {
            ReportResult::Success => {
                w.bool(true);
            }
            ReportResult::Pending => {
                encode_failure(&mut w, PENDING, Reason::OperationFailed, 0, 0);
            }
            ReportResult::Failure {
                code,
                reason,
                section,
                component,
            } => encode_failure(&mut w, *code, *reason, *section, *component),
        }
        w.u64(99).array(2).str(&self.manifest_uri);
        w.array(2)
            .i64(self.manifest_digest.alg().cose_id())
            .bytes(self.manifest_digest.as_bytes());
        w.into_bytes()
    }

    /// Decodes a SUIT_Report of this format.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Reader::decode_exact(bytes, "SUIT report", |r| {
            let mut entries = r.map()?;
            let (mut nonce, mut result, mut reference) = (None, None, None);
            while entries.next_entry() {
                match r.map_key(&mut entries)? {
                    Key::Int(2) => nonce = Some(r.bytes()?.to_vec()),
                    Key::Int(3) => {
                        if r.array()? != 0 {
                            return Err(invalid("records", "this format keeps no records"));
                        }
                    }
                    Key::Int(4) => result = Some(decode_result(r)?),
                    Key::Int(99) => {
                        r.array_of(2, "[manifest-uri, manifest-digest]")?;
                        let uri = String::from(r.str()?);
                        let d = SuitDigest::decode(r)?;
                        let value = DigestValue::new(d.alg, d.bytes)
                            .ok_or(invalid("digest", "wrong length"))?;
                        reference = Some((uri, value));
                    }
                    _ => return Err(invalid("key", "unknown report element")),
                }
            }
            let (manifest_uri, manifest_digest) = reference.ok_or(Error::MissingElement {
                context: "SUIT report",
                element: "suit-reference",
            })?;
            let result = result.ok_or(Error::MissingElement {
                context: "SUIT report",
                element: "suit-report-result",
            })?;
            Ok(Report {
                manifest_uri,
                manifest_digest,
                nonce,
                result,
            })
        })
    }

    /// Signs the report with the device key.
    pub fn sign(&self, key: &dyn PrivateKey) -> Result<Vec<u8>> {
        sign_with_device_key(self.encode(), key, Some(CONTENT_TYPE))
    }

    /// Verifies a signed report against the device public key (P-384, SEC1 uncompressed)
    /// and decodes it.
    pub fn verify(bytes: &[u8], key: &[u8]) -> Result<Self> {
        Report::decode(&open_device_signed(bytes, key, Some(CONTENT_TYPE))?)
    }

    /// The manifest digest to report for an envelope that could not be decoded: SHA-256 of
    /// its bytes.
    pub fn digest_of_input(bytes: &[u8]) -> DigestValue {
        DigestAlg::Sha256.digest(bytes)
    }
}

fn encode_failure(w: &mut Writer, code: i64, reason: Reason, section: i64, component: u64) {
    w.map(3).u64(5).i64(code).u64(6);
    w.array(5)
        .array(0)
        .i64(section)
        .u64(0)
        .u64(component)
        .map(0);
    w.u64(7).u64(reason.code());
}

fn invalid(element: &'static str, reason: &'static str) -> Error {
    Error::InvalidValue {
        context: "SUIT report",
        element,
        reason,
    }
}

fn decode_result(r: &mut Reader<'_>) -> Result<ReportResult> {
    if r.is(minicbor::data::Type::Bool) {
        return if r.bool()? {
            Ok(ReportResult::Success)
        } else {
            Err(invalid("result", "false is not a result"))
        };
    }
    let mut entries = r.map()?;
    let (mut code, mut record, mut reason) = (None, None, None);
    while entries.next_entry() {
        match r.map_key(&mut entries)? {
            Key::Int(5) => code = Some(r.i64()?),
            Key::Int(6) => {
                r.array_of(5, "SUIT_Record")?;
                if r.array()? != 0 {
                    return Err(invalid(
                        "manifest-id",
                        "this format reports on one manifest",
                    ));
                }
                let section = r.i64()?;
                r.u64()?;
                let component = r.u64()?;
                if r.map()?.next_entry() {
                    return Err(invalid("record properties", "this format keeps none"));
                }
                record = Some((section, component));
            }
            Key::Int(7) => {
                reason = Some(
                    Reason::from_code(r.u64()?)
                        .ok_or(invalid("reason", "not one this format uses"))?,
                )
            }
            _ => return Err(invalid("result", "unknown result element")),
        }
    }
    match (code, record, reason) {
        (Some(PENDING), Some((0, 0)), Some(Reason::OperationFailed)) => Ok(ReportResult::Pending),
        (Some(code), Some((section, component)), Some(reason)) => Ok(ReportResult::Failure {
            code,
            reason,
            section,
            component,
        }),
        _ => Err(invalid(
            "result",
            "needs result-code, result-record and result-reason",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> alloc::boxed::Box<dyn PrivateKey> {
        crate::crypto::provider()
            .private_key(crate::crypto::Curve::P384, &[seed; 48], None)
            .unwrap()
    }

    #[test]
    fn reports_round_trip_signed() {
        for result in [
            ReportResult::Success,
            ReportResult::Pending,
            ReportResult::Failure {
                code: Category::Rollback.code().into(),
                reason: Reason::of(Category::Rollback),
                section: 0,
                component: 0,
            },
            ReportResult::Failure {
                code: TRIAL_FAILED,
                reason: Reason::OperationFailed,
                section: 0,
                component: 2,
            },
        ] {
            let report = Report {
                manifest_uri: String::from("https://example.com/fw.suit"),
                manifest_digest: DigestAlg::Sha256.digest(b"manifest"),
                nonce: Some(alloc::vec![7; 8]),
                result,
            };
            let signed = report.sign(&*key(1)).unwrap();
            assert_eq!(
                Report::verify(&signed, &key(1).public_sec1()).unwrap(),
                report
            );
            assert!(Report::verify(&signed, &key(2).public_sec1()).is_err());
        }
    }

    #[test]
    fn reports_and_tokens_cannot_stand_in_for_each_other() {
        let k = key(3);
        let report = Report {
            manifest_uri: String::new(),
            manifest_digest: DigestAlg::Sha256.digest(b"m"),
            nonce: None,
            result: ReportResult::Success,
        };
        let signed = report.sign(&*k).unwrap();
        assert!(crate::token::Token::verify(&signed, &k.public_sec1()).is_err());
        let bare = sign_with_device_key(report.encode(), &*k, None).unwrap();
        assert!(
            Report::verify(&bare, &k.public_sec1()).is_err(),
            "a report needs its content type"
        );
    }
}
