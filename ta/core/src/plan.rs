//! Running a manifest whose payloads are not there yet (DESIGN.md §4).
//!
//! The same [`Planner`] platform runs the manifest twice. At LOAD_MANIFEST (planning mode)
//! fetch, write and copy are recorded as planned content of their component, and a condition
//! on a planned component's content becomes an expectation (digest, size) attached to it and
//! is answered "match"; everything else — vendor/class/device checks, component-slot (against
//! the target slot the agent names), use-before, try-each choices — is decided for real. At
//! COMMIT (verification mode) the content conditions are answered from the digests the TA
//! computed while the bytes streamed through it. Both runs record a trace of every
//! content-related step and its answer; COMMIT requires the two traces to be equal, i.e. the
//! second run passes and takes the same path.
//!
//! A component that is only the staging source of a copy (the firmware-encryption draft's
//! form: fetch the ciphertext into a cache component, check its digest, copy-decrypt into the
//! real component) is not an install item of its own: its expectations become the item's
//! `fetch_digest` / `fetch_size`, checked on the streamed bytes before decryption, and at COMMIT
//! its conditions are answered from what the TA computed over those bytes.
//!
//! Limits, each rejected with a clear message: a condition on content the update does not
//! provide (the TA cannot see the slots), check-content and swap.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use suit_shared::abi::{ComponentIdBytes, PayloadSource, PlanItem};
use suit_shared::digest::{DigestAlg, DigestValue, SuitDigest};
use suit_shared::manifest::ComponentId;
use suit_shared::params::ComponentParams;
use suit_shared::processor::{ComponentRef, DeviceIdentity, FetchSource, ImageCheck, Platform};
use suit_shared::{Error, Result};

/// A digest and size the TA computed over a component's plaintext.
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
    /// A digest/size condition and whether it matched.
    Check(usize, DigestValue, Option<u64>, ImageCheck),
}

#[derive(Debug, Clone)]
struct Content {
    source: PayloadSource,
    encryption_info: Option<Vec<u8>>,
    digest: Option<DigestValue>,
    size: Option<u64>,
    /// The staging component this content was copied from.
    from: Option<usize>,
}

/// One install item of the plan, with the staging component its bytes pass through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The item as the host sees it.
    pub item: PlanItem,
    /// The staging component (source of the copy), if any.
    pub staging: Option<usize>,
}

/// The planning / verification platform.
pub struct Planner<'c> {
    identity: DeviceIdentity,
    slot: u64,
    now: Option<u64>,
    computed: Option<&'c [Option<Computed>]>,
    content: Vec<Option<Content>>,
    copied_from: Vec<bool>,
    /// The steps taken so far.
    pub trace: Vec<Step>,
}

impl<'c> Planner<'c> {
    /// A planner for `components` components; `computed` selects verification mode.
    pub fn new(
        identity: DeviceIdentity,
        slot: u64,
        now: Option<u64>,
        components: usize,
        computed: Option<&'c [Option<Computed>]>,
    ) -> Self {
        Planner {
            identity,
            slot,
            now,
            computed,
            content: vec![None; components],
            copied_from: vec![false; components],
            trace: Vec::new(),
        }
    }

    /// The install plan after a planning run: every component that receives new content and
    /// is not only a staging source of a copy.
    pub fn finish(self, components: &[ComponentId<'_>]) -> Result<Vec<Planned>> {
        let mut items = Vec::new();
        for (index, content) in self.content.iter().enumerate() {
            let Some(content) = content else { continue };
            if self.copied_from[index] {
                continue;
            }
            let mut content = content.clone();
            let staging = content.from;
            let (mut fetch_digest, mut fetch_size) = (None, None);
            if let Some(s) = staging
                .and_then(|s| self.content.get(s))
                .and_then(Option::as_ref)
            {
                if content.encryption_info.is_some() {
                    fetch_digest = s.digest.clone();
                    fetch_size = s.size;
                } else if content.digest.is_none() {
                    // A plain copy: the staged bytes are the component's bytes.
                    content.digest = s.digest.clone();
                    content.size = content.size.or(s.size);
                }
            }
            if let (PayloadSource::Content(bytes), None, None) =
                (&content.source, &content.encryption_info, &content.digest)
            {
                content.digest = Some(DigestAlg::Sha256.digest(bytes));
                content.size = Some(bytes.len() as u64);
            }
            if content.digest.is_none() && content.encryption_info.is_none() {
                return Err(Error::Unsupported(format!(
                    "component {index} receives a payload that the manifest never checks \
                     (no image-match after fetch/copy): it cannot be approved"
                )));
            }
            let id: ComponentIdBytes = components[index].0.iter().map(|p| p.to_vec()).collect();
            items.push(Planned {
                item: PlanItem {
                    index: u32::try_from(index).map_err(|_| Error::LimitExceeded {
                        what: "components",
                        limit: u32::MAX as usize,
                    })?,
                    component_id: id,
                    slot: self.slot,
                    source: content.source,
                    size: content.size,
                    digest: content.digest,
                    encryption_info: content.encryption_info,
                    fetch_size,
                    fetch_digest,
                },
                staging,
            });
        }
        if items.is_empty() {
            return Err(Error::Unsupported(String::from(
                "the manifest installs no payload (no fetch, write or copy in payload-fetch/install)",
            )));
        }
        Ok(items)
    }

    fn content_of(&self, c: usize, what: &str) -> Result<&Content> {
        self.content.get(c).and_then(Option::as_ref).ok_or_else(|| {
            Error::Unsupported(format!(
                "{what} on the current content of component {c}, which this update does not \
                     provide (the TA cannot read the slots)"
            ))
        })
    }

    fn planned_check(
        &mut self,
        c: usize,
        digest: &DigestValue,
        size: Option<u64>,
    ) -> Result<ImageCheck> {
        self.content_of(c, "an image condition")?;
        let content = self.content[c]
            .as_mut()
            .ok_or(Error::ComponentIndexOutOfRange {
                index: c as u64,
                count: 0,
            })?;
        match &content.digest {
            None => content.digest = Some(digest.clone()),
            Some(d) if d == digest => {}
            Some(_) => return Ok(ImageCheck::DigestMismatch),
        }
        match (content.size, size) {
            (Some(actual), Some(s)) if actual != s => {
                return Ok(ImageCheck::SizeMismatch { actual })
            }
            (None, Some(s)) => content.size = Some(s),
            _ => {}
        }
        Ok(ImageCheck::Match)
    }

    fn verified_check(
        &self,
        computed: &[Option<Computed>],
        c: usize,
        digest: &DigestValue,
        size: Option<u64>,
    ) -> Result<ImageCheck> {
        self.content_of(c, "an image condition")?;
        let Some(Some(actual)) = computed.get(c) else {
            return Ok(ImageCheck::DigestMismatch);
        };
        if let Some(s) = size {
            if s != actual.size {
                return Ok(ImageCheck::SizeMismatch {
                    actual: actual.size,
                });
            }
        }
        Ok(if actual.digest == *digest {
            ImageCheck::Match
        } else {
            ImageCheck::DigestMismatch
        })
    }

    fn set(&mut self, c: usize, content: Content) -> Result<()> {
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
}

impl Platform for Planner<'_> {
    fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    fn component_slot(&self, _component: ComponentRef<'_, '_>) -> Option<u64> {
        Some(self.slot)
    }

    fn check_image(
        &mut self,
        component: ComponentRef<'_, '_>,
        digest: &SuitDigest<'_>,
        size: Option<u64>,
    ) -> Result<ImageCheck> {
        let c = component.index;
        let wanted = DigestValue::new(digest.alg, digest.bytes).ok_or(Error::InvalidValue {
            context: "image-digest",
            element: "digest",
            reason: "length does not match its algorithm",
        })?;
        let answer = match self.computed {
            None => self.planned_check(c, &wanted, size)?,
            Some(computed) => self.verified_check(computed, c, &wanted, size)?,
        };
        self.trace.push(Step::Check(c, wanted, size, answer));
        Ok(answer)
    }

    fn check_content(&mut self, component: ComponentRef<'_, '_>, _expected: &[u8]) -> Result<bool> {
        Err(Error::Unsupported(format!(
            "check-content on component {} (use image-match)",
            component.index
        )))
    }

    fn fetch(
        &mut self,
        component: ComponentRef<'_, '_>,
        source: FetchSource<'_>,
        params: &ComponentParams<'_>,
    ) -> Result<()> {
        let source = match source {
            FetchSource::Uri(uri) => PayloadSource::Uri(String::from(uri)),
            FetchSource::Integrated { uri, .. } => PayloadSource::Integrated(String::from(uri)),
        };
        self.trace
            .push(Step::Fetch(component.index, source.clone()));
        self.set(
            component.index,
            Content {
                source,
                encryption_info: params.encryption_info.map(<[u8]>::to_vec),
                digest: None,
                size: None,
                from: None,
            },
        )
    }

    fn write(
        &mut self,
        component: ComponentRef<'_, '_>,
        params: &ComponentParams<'_>,
    ) -> Result<()> {
        let content = params.content.ok_or(Error::ParameterUnset {
            command: "directive-write",
            parameter: "content",
            component: component.index,
        })?;
        self.trace.push(Step::Write(component.index));
        self.set(
            component.index,
            Content {
                source: PayloadSource::Content(content.to_vec()),
                encryption_info: params.encryption_info.map(<[u8]>::to_vec),
                digest: None,
                size: None,
                from: None,
            },
        )
    }

    fn copy(
        &mut self,
        component: ComponentRef<'_, '_>,
        source: ComponentRef<'_, '_>,
        params: &ComponentParams<'_>,
    ) -> Result<()> {
        let from = self.content_of(source.index, "a copy")?.clone();
        if from.encryption_info.is_some() && params.encryption_info.is_some() {
            return Err(Error::Unsupported(String::from(
                "decrypting a payload twice (encryption-info on both fetch and copy)",
            )));
        }
        self.trace.push(Step::Copy(component.index, source.index));
        self.copied_from[source.index] = true;
        self.set(
            component.index,
            Content {
                source: from.source,
                encryption_info: params
                    .encryption_info
                    .map(<[u8]>::to_vec)
                    .or(from.encryption_info),
                digest: None,
                size: None,
                from: Some(source.index),
            },
        )
    }

    fn now(&self) -> Option<u64> {
        self.now
    }
}
