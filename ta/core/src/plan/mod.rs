//! Running a manifest whose payloads are not there yet (DESIGN.md §4).
//!
//! The same [`Planner`] platform runs the manifest at LOAD_MANIFEST ([`plan`]) and again at
//! COMMIT ([`verify`]). Fetch, write and copy are recorded as planned content; every payload
//! (the bytes one fetch, write or decrypting copy produces) has what the planner knows about
//! it: a digest and size it must have, digests it must not have, or its very bytes (content
//! written from the manifest). Everything that is not about content — vendor/class/device
//! checks, component-slot (against the target slot the agent names), use-before, and
//! minimum-battery and update-authorized from the [`DeviceFacts`] the agent reports — is
//! decided for real. COMMIT answers those from the same facts, kept with the update, so both
//! runs take the same path.
//!
//! **Content conditions while planning.** An image-match or image-not-match whose answer
//! follows from what is known gets that answer. One that does not is a *decision*: the first
//! run answers "the condition holds" (and records that as an expectation), then [`plan`]
//! explores every other answer, one run per alternative. A manifest is planned when exactly one
//! path succeeds; its expectations become the plan's digests and sizes. So an image-not-match
//! never pins a digest, an expectation made in a try-each branch that was abandoned does not
//! hold the next branch back, and a manifest that accepts alternative contents for a component
//! (try-each over image-match) is refused as unsupported — the TA approves one content per
//! component.
//!
//! **COMMIT** answers the content conditions from the digests the TA computed while the bytes
//! streamed through it. Both runs record a trace of every content-related step and its answer;
//! COMMIT requires the two traces to be equal, i.e. the second run passes and takes the same
//! path.
//!
//! A component that is only the staging source of a copy (the draft's fetch → check → copy,
//! e.g. its Example 4, or the firmware-encryption form: fetch the ciphertext into a cache
//! component, check its digest, copy-decrypt into the real component) is not an install item of
//! its own. A plain copy installs the staged bytes themselves; a decrypting copy's staged
//! expectations become the item's `fetch_digest` / `fetch_size`, checked on the streamed bytes
//! before decryption.
//!
//! **Install policy**, refused at LOAD_MANIFEST: every installed component needs a plaintext
//! image digest and size that the manifest checks (the AEAD tag of an encrypted payload is not
//! enough: anyone holding a fleet KEK could substitute a payload), and vendor-id and class-id
//! conditions that passed for it on the path taken (otherwise the manifest applies to every
//! device).
//!
//! Limits, each refused with a clear message: a condition on content the update does not
//! provide (the TA cannot see the slots), digests of two algorithms for one payload,
//! check-content and swap.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use suit_shared::abi::{DeviceFacts, PayloadSource, PlanItem};
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::manifest::Authentic;
use suit_shared::processor::DeviceIdentity;
use suit_shared::Error;

use crate::error::{Result, TaError};

mod platform;
mod run;

pub use run::{plan, verify};

/// Most runs of a manifest [`plan`] makes while exploring the answers to content conditions.
const MAX_RUNS: usize = 128;

/// A digest and size the TA computed over a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// The digest.
    pub digest: DigestValue,
    /// The size.
    pub size: u64,
}

/// One content-related step of a run, with the answer it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Fetch into a component.
    Fetch(usize, PayloadSource),
    /// Write content into a component.
    Write(usize),
    /// Copy (and possibly decrypt) from the second component into the first.
    Copy(usize, usize),
    /// A digest/size condition (image-match, image-not-match) and whether the content matched.
    Check(usize, DigestValue, Option<u64>, bool),
}

/// What a run knows about one payload's bytes.
#[derive(Debug, Clone, Default)]
struct Knowledge {
    /// The bytes themselves (plain content written from the manifest).
    bytes: Option<Vec<u8>>,
    /// The digest the bytes must have.
    digest: Option<DigestValue>,
    /// The size the bytes must have.
    size: Option<u64>,
    /// Digest (with size, when given) the bytes must not have.
    excluded: Vec<(DigestValue, Option<u64>)>,
}

impl Knowledge {
    fn of(computed: &Computed) -> Self {
        Knowledge {
            digest: Some(computed.digest.clone()),
            size: Some(computed.size),
            ..Knowledge::default()
        }
    }

    /// Whether the bytes have `digest` (and `size`): `None` when that does not follow from
    /// what is known.
    fn matches(
        &self,
        c: usize,
        digest: &DigestValue,
        size: Option<u64>,
    ) -> suit_shared::Result<Option<bool>> {
        if let Some(bytes) = &self.bytes {
            return Ok(Some(
                digest.alg().digest(bytes) == *digest
                    && size.is_none_or(|s| s == bytes.len() as u64),
            ));
        }
        if let (Some(known), Some(s)) = (self.size, size) {
            if known != s {
                return Ok(Some(false));
            }
        }
        let other = self
            .digest
            .iter()
            .chain(self.excluded.iter().map(|(d, _)| d))
            .find(|d| d.alg() != digest.alg());
        if let Some(other) = other {
            return Err(Error::Unsupported(format!(
                "component {c} is checked against digests of two algorithms ({} and {}); \
                 the TA hashes a payload with one",
                other.alg().name(),
                digest.alg().name()
            )));
        }
        let size_then = size.or(self.size);
        let excluded = self
            .excluded
            .iter()
            .any(|(d, s)| d == digest && s.is_none_or(|s| Some(s) == size_then));
        Ok(match &self.digest {
            Some(known) if known != digest => Some(false),
            _ if excluded => Some(false),
            Some(_) if size.is_none() || self.size.is_some() => Some(true),
            _ => None,
        })
    }

    /// Records the answer of a decision.
    fn learn(&mut self, digest: &DigestValue, size: Option<u64>, matched: bool) {
        if matched {
            self.digest = Some(digest.clone());
            self.size = size.or(self.size);
        } else {
            self.excluded.push((digest.clone(), size));
        }
    }
}

#[derive(Debug, Clone)]
struct Content {
    source: PayloadSource,
    encryption_info: Option<Vec<u8>>,
    /// The dm-verity root the manifest binds to the component's plaintext.
    verity_root: Option<[u8; suit_shared::verity::DIGEST_LEN]>,
    /// The payload the component holds.
    payload: usize,
    /// For a copy: the source component and the payload as it arrives there (the
    /// ciphertext when the copy decrypts, else the same payload).
    from: Option<(usize, usize)>,
}

/// One install item of the plan, with the staging component its bytes pass through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The item as the host sees it.
    pub item: PlanItem,
    /// The staging component (source of the copy), if any.
    pub staging: Option<usize>,
    /// The payload (numbered in run order) the item installs.
    pub payload: usize,
    /// The payload the item's bytes arrive as, when a copy decrypts them on the way.
    pub fetched_payload: Option<usize>,
}

/// A planned manifest: its install items and the content steps of its path.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The install items.
    pub items: Vec<Planned>,
    /// The content-related steps of the path, with their answers.
    pub trace: Vec<Step>,
}

/// The planning / verification platform.
struct Planner<'c> {
    identity: DeviceIdentity,
    slot: u64,
    now: Option<u64>,
    facts: DeviceFacts,
    /// Verification mode: what the TA computed, per payload.
    computed: Option<&'c [Option<Computed>]>,
    content: Vec<Option<Content>>,
    payloads: Vec<Knowledge>,
    copied_from: Vec<bool>,
    /// Answers to give to the first decisions (planning mode).
    script: Vec<bool>,
    /// Answers given to decisions so far.
    decisions: Vec<bool>,
    trace: Vec<Step>,
}

fn too_many_paths() -> Error {
    Error::Unsupported(format!(
        "the manifest's content conditions leave more than {MAX_RUNS} paths to explore"
    ))
}

fn refused(reason: String) -> TaError {
    TaError::Refused(reason)
}

impl<'c> Planner<'c> {
    fn new(
        identity: &DeviceIdentity,
        slot: u64,
        (now, facts): (Option<u64>, DeviceFacts),
        authentic: &Authentic<'_>,
        computed: Option<&'c [Option<Computed>]>,
    ) -> Self {
        let components = authentic.manifest.components.len();
        Planner {
            identity: identity.clone(),
            slot,
            now,
            facts,
            computed,
            content: vec![None; components],
            payloads: Vec::new(),
            copied_from: vec![false; components],
            script: Vec::new(),
            decisions: Vec::new(),
            trace: Vec::new(),
        }
    }

    /// The install plan after a planning run: every component that receives new content and
    /// is not only a staging source of a copy; `applicable[c]` tells whether vendor-id and
    /// class-id passed for component `c`.
    fn finish(&self, components: &[ComponentId], applicable: &[bool]) -> Result<Vec<Planned>> {
        let mut items = Vec::new();
        for (index, content) in self.content.iter().enumerate() {
            let Some(content) = content else { continue };
            if self.copied_from[index] {
                continue;
            }
            let known = &self.payloads[content.payload];
            let (digest, size) = match (&known.bytes, &content.encryption_info) {
                (Some(bytes), None) => (
                    Some(DigestAlg::Sha256.digest(bytes)),
                    Some(bytes.len() as u64),
                ),
                _ => (known.digest.clone(), known.size),
            };
            let (Some(digest), Some(size)) = (digest, size) else {
                return Err(refused(format!(
                    "component {index} would be installed without a plaintext image-digest and \
                     image-size that the manifest checks (image-match after the fetch, write or \
                     copy); the TA approves no payload on an encryption tag alone"
                )));
            };
            if !applicable.get(index).copied().unwrap_or(false) {
                return Err(refused(format!(
                    "the manifest installs component {index} without checking both vendor-id \
                     and class-id for it: it would apply to every device"
                )));
            }
            let fetched_payload = content
                .from
                .map(|(_, p)| p)
                .filter(|&p| p != content.payload);
            let fetched = fetched_payload.map(|p| &self.payloads[p]);
            items.push(Planned {
                item: PlanItem {
                    index: u32::try_from(index).map_err(|_| Error::LimitExceeded {
                        what: "components",
                        limit: u32::MAX as usize,
                    })?,
                    component_id: components[index].clone(),
                    slot: self.slot,
                    source: content.source.clone(),
                    size: Some(size),
                    digest: Some(digest),
                    encryption_info: content.encryption_info.clone(),
                    fetch_size: fetched.and_then(|k| k.size),
                    fetch_digest: fetched.and_then(|k| k.digest.clone()),
                    verity_root: content.verity_root.map(|r| r.to_vec()),
                },
                staging: content.from.map(|(s, _)| s),
                payload: content.payload,
                fetched_payload,
            });
        }
        if items.is_empty() {
            return Err(Error::Unsupported(String::from(
                "the manifest installs no payload (no fetch, write or copy in payload-fetch/install)",
            ))
            .into());
        }
        Ok(items)
    }

    fn content_of(&self, c: usize, what: &str) -> suit_shared::Result<&Content> {
        self.content.get(c).and_then(Option::as_ref).ok_or_else(|| {
            Error::Unsupported(format!(
                "{what} on the current content of component {c}, which this update does not \
                 provide (the TA cannot read the slots)"
            ))
        })
    }

    /// Whether component `c`'s content has `digest` (and `size`): from what is known, from
    /// what the TA computed (verification), or as a decision (planning).
    fn matches(
        &mut self,
        c: usize,
        digest: &DigestValue,
        size: Option<u64>,
        holds_if_matched: bool,
    ) -> suit_shared::Result<bool> {
        let payload = self.content_of(c, "an image condition")?.payload;
        let from_computed;
        let known = match (self.computed, &self.payloads[payload].bytes) {
            (Some(computed), None) => {
                from_computed = computed
                    .get(payload)
                    .and_then(Option::as_ref)
                    .map(Knowledge::of)
                    .unwrap_or_default();
                &from_computed
            }
            _ => &self.payloads[payload],
        };
        let matched = match (known.matches(c, digest, size)?, self.computed) {
            (Some(matched), _) => matched,
            // Verification: content the TA did not compute matches nothing.
            (None, Some(_)) => false,
            (None, None) => {
                if self.decisions.len() == MAX_RUNS {
                    return Err(too_many_paths());
                }
                let holds = self
                    .script
                    .get(self.decisions.len())
                    .copied()
                    .unwrap_or(true);
                self.decisions.push(holds);
                let matched = holds == holds_if_matched;
                self.payloads[payload].learn(digest, size, matched);
                matched
            }
        };
        self.trace
            .push(Step::Check(c, digest.clone(), size, matched));
        Ok(matched)
    }

    fn set(&mut self, c: usize, content: Content) -> suit_shared::Result<()> {
        let slot = self
            .content
            .get_mut(c)
            .ok_or(Error::ComponentIndexOutOfRange {
                index: c as u64,
                count: 0,
            })?;
        *slot = Some(content);
        Ok(())
    }

    fn new_payload(&mut self, knowledge: Knowledge) -> usize {
        self.payloads.push(knowledge);
        self.payloads.len() - 1
    }
}
