//! The SUIT command processor (draft-ietf-suit-manifest §6, §8.4.9–8.4.10).
//!
//! The processor interprets an authenticated [`Manifest`] and leaves every piece of component
//! I/O to a [`Platform`]: the same interpreter runs in the TA (planning and commit platforms),
//! in `suit-tool process` (files) and in tests (memory).
//!
//! Semantics implemented here:
//! * each sequence of a procedure is preceded by the shared sequence; parameters are cleared
//!   once, when the processor is created (§6.1);
//! * a failed condition ends the current sequence; unless soft-failure is set there, it aborts
//!   the whole procedure (§6.4) — except inside run-sequence, which forwards the failure to the
//!   enclosing sequence as its own status (§8.4.10.8); a failed directive always aborts;
//! * try-each starts every branch with soft-failure true and succeeds with the first branch that
//!   completes; when all fail it fails like a condition, unless it ends with `nil` (§8.4.10.2);
//! * run-sequence starts with soft-failure false; with soft-failure set inside, a failed
//!   condition ends it without failing the enclosing sequence (§8.4.10.8);
//! * soft-failure may only be set inside try-each or run-sequence (§8.4.8.15);
//! * commands run once per selected component; try-each and run-sequence run once per selected
//!   component with that single index (§6.5).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::command::{Command, CommandSequence, Condition, Directive, IndexSelection};
use crate::digest::SuitDigest;
use crate::encryption::EncryptionInfo;
use crate::envelope::Envelope;
use crate::error::{Error, IdValue, Result, Uuid};
use crate::manifest::{Authentic, ComponentId, Manifest, Severable};
use crate::params::{ComponentParams, Parameter, VendorId};

/// What the device says about itself for the applicability conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Vendor UUID.
    pub vendor_id: Uuid,
    /// Class UUID.
    pub class_id: Uuid,
    /// Device UUID, if the device has one.
    pub device_id: Option<Uuid>,
}

/// A component as the platform sees it.
#[derive(Debug, Clone, Copy)]
pub struct ComponentRef<'m, 'a> {
    /// Index in the manifest's component list.
    pub index: usize,
    /// Its identifier.
    pub id: &'m ComponentId<'a>,
}

/// Result of comparing a component's content with a digest and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageCheck {
    /// Digest (and size, when given) match.
    Match,
    /// The digest differs.
    DigestMismatch,
    /// The size differs.
    SizeMismatch {
        /// The content's actual size.
        actual: u64,
    },
}

/// Where fetched bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchSource<'a> {
    /// A URI to retrieve.
    Uri(&'a str),
    /// A payload carried in the envelope, with its URI fragment reference.
    Integrated {
        /// The `#fragment` reference.
        uri: &'a str,
        /// The bytes.
        data: &'a [u8],
    },
}

/// Component I/O and device facts, supplied by whoever runs the processor.
///
/// Methods with defaults describe capabilities a device may lack; the defaults say so.
pub trait Platform {
    /// The device's identity.
    fn identity(&self) -> &DeviceIdentity;

    /// The slot a component occupies for this procedure (component-slot condition).
    fn component_slot(&self, component: ComponentRef<'_, '_>) -> Option<u64>;

    /// Compares the component's current content with `digest` and, when given, `size`.
    fn check_image(
        &mut self,
        component: ComponentRef<'_, '_>,
        digest: &SuitDigest<'_>,
        size: Option<u64>,
    ) -> Result<ImageCheck>;

    /// Whether the component's content differs from `digest` (image-not-match). By default
    /// the negation of [`Platform::check_image`] without a size.
    fn check_image_differs(
        &mut self,
        component: ComponentRef<'_, '_>,
        digest: &SuitDigest<'_>,
    ) -> Result<bool> {
        Ok(self.check_image(component, digest, None)? != ImageCheck::Match)
    }

    /// Constant-time comparison of the component's content with `expected` (check-content).
    fn check_content(&mut self, component: ComponentRef<'_, '_>, expected: &[u8]) -> Result<bool>;

    /// Retrieves bytes into the component (fetch). `params` holds size, digest, fetch-arguments.
    fn fetch(
        &mut self,
        component: ComponentRef<'_, '_>,
        source: FetchSource<'_>,
        params: &ComponentParams<'_>,
    ) -> Result<()>;

    /// Writes `params.content` into the component, decrypting with `params.encryption_info`
    /// when set (write).
    fn write(
        &mut self,
        component: ComponentRef<'_, '_>,
        params: &ComponentParams<'_>,
    ) -> Result<()>;

    /// Copies `source` into the component, decrypting with `params.encryption_info` when set.
    fn copy(
        &mut self,
        component: ComponentRef<'_, '_>,
        source: ComponentRef<'_, '_>,
        params: &ComponentParams<'_>,
    ) -> Result<()>;

    /// Exchanges the contents of two components.
    fn swap(
        &mut self,
        component: ComponentRef<'_, '_>,
        other: ComponentRef<'_, '_>,
        _params: &ComponentParams<'_>,
    ) -> Result<()> {
        let _ = (component, other);
        Err(Error::Unsupported("directive-swap on this device".into()))
    }

    /// Transfers control to the component.
    fn invoke(
        &mut self,
        component: ComponentRef<'_, '_>,
        _params: &ComponentParams<'_>,
    ) -> Result<()> {
        let _ = component;
        Err(Error::Unsupported("directive-invoke on this device".into()))
    }

    /// Removes the component (trust-domains unlink).
    fn unlink(&mut self, component: ComponentRef<'_, '_>) -> Result<()> {
        let _ = component;
        Err(Error::Unsupported("directive-unlink on this device".into()))
    }

    /// Waits for the event in `params.wait_info`.
    fn wait(
        &mut self,
        component: ComponentRef<'_, '_>,
        _params: &ComponentParams<'_>,
    ) -> Result<()> {
        let _ = component;
        Err(Error::Unsupported("directive-wait on this device".into()))
    }

    /// Seconds since 1970 from a clock the device trusts enough for use-before, if any.
    fn now(&self) -> Option<u64> {
        None
    }

    /// Battery charge in mWh; `None` for a device without battery (the condition passes).
    fn battery_mwh(&self) -> Option<u64> {
        None
    }

    /// Whether the application authorises the update now (update-authorized).
    fn update_authorized(
        &mut self,
        component: ComponentRef<'_, '_>,
        priority: Option<i64>,
    ) -> bool {
        let _ = (component, priority);
        true
    }

    /// The installed version of the component, if known (version condition).
    fn component_version(&self, component: ComponentRef<'_, '_>) -> Option<Vec<i64>> {
        let _ = component;
        None
    }
}

/// A manifest section the processor can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// suit-payload-fetch.
    PayloadFetch,
    /// suit-candidate-verification.
    CandidateVerification,
    /// suit-install.
    Install,
    /// suit-validate.
    Validate,
    /// suit-load.
    Load,
    /// suit-invoke.
    Invoke,
}

impl Section {
    /// The update procedure (§5.3.3 as this project runs it): fetch, verify, install, validate.
    pub const UPDATE: [Section; 4] = [
        Section::PayloadFetch,
        Section::CandidateVerification,
        Section::Install,
        Section::Validate,
    ];
    /// The invocation procedure: validate, load, invoke.
    pub const INVOCATION: [Section; 3] = [Section::Validate, Section::Load, Section::Invoke];

    /// Section name as in the draft.
    pub fn name(self) -> &'static str {
        match self {
            Section::PayloadFetch => "payload-fetch",
            Section::CandidateVerification => "candidate-verification",
            Section::Install => "install",
            Section::Validate => "validate",
            Section::Load => "load",
            Section::Invoke => "invoke",
        }
    }
}

/// Outcome of a sequence that did not abort.
enum Flow {
    /// Ran to its end.
    Completed,
    /// Ended early by a failed condition; the caller applies the soft-failure rules.
    ConditionFailed(Error),
}

/// Execution state of one sequence.
struct Frame {
    selection: Vec<usize>,
    soft_failure: bool,
    /// Inside try-each or run-sequence, where soft-failure may be set.
    scoped: bool,
}

/// Interprets one authenticated manifest against a platform.
pub struct Processor<'p, 'a, P: Platform> {
    manifest: &'p Manifest<'a>,
    envelope: &'p Envelope<'a>,
    platform: &'p mut P,
    params: Vec<ComponentParams<'a>>,
    /// Per component, the conditions that passed on the path taken (one bit per command
    /// number); a try-each branch that fails takes its bits back.
    passed: Vec<u32>,
}

/// The bit of `condition` in [`Processor::passed`]'s masks (command numbers are below 32).
fn condition_bit(condition: Condition) -> u32 {
    u32::try_from(condition.key())
        .ok()
        .and_then(|k| 1u32.checked_shl(k))
        .unwrap_or(0)
}

impl<'p, 'a, P: Platform> Processor<'p, 'a, P> {
    /// A processor with cleared parameters.
    pub fn new(authentic: &'p Authentic<'a>, platform: &'p mut P) -> Self {
        let n = authentic.manifest.components.len();
        Processor {
            manifest: &authentic.manifest,
            envelope: &authentic.envelope,
            platform,
            params: vec![ComponentParams::default(); n],
            passed: vec![0; n],
        }
    }

    /// Whether `condition` passed for `component` on the path the run took: in a sequence that
    /// went on, not in a try-each branch that was abandoned.
    pub fn passed(&self, component: usize, condition: Condition) -> bool {
        self.passed
            .get(component)
            .is_some_and(|bits| bits & condition_bit(condition) != 0)
    }

    /// The platform (e.g. to read what a planning platform recorded).
    pub fn platform(&mut self) -> &mut P {
        self.platform
    }

    /// Runs the given sections in order; absent sections are skipped, severed sections that
    /// the envelope does not carry fail.
    pub fn run(&mut self, sections: &[Section]) -> Result<()> {
        let manifest = self.manifest;
        for &section in sections {
            let seq = match section {
                Section::PayloadFetch => severable(&manifest.payload_fetch, section)?,
                Section::CandidateVerification => {
                    severable(&manifest.candidate_verification, section)?
                }
                Section::Install => severable(&manifest.install, section)?,
                Section::Validate => manifest.validate.as_ref(),
                Section::Load => manifest.load.as_ref(),
                Section::Invoke => manifest.invoke.as_ref(),
            };
            if let Some(seq) = seq {
                if let Some(shared) = &manifest.shared_sequence {
                    self.run_top_level(shared)?;
                }
                self.run_top_level(seq)?;
            }
        }
        Ok(())
    }

    fn run_top_level(&mut self, seq: &CommandSequence<'a>) -> Result<()> {
        let selection = if self.params.is_empty() {
            Vec::new()
        } else {
            vec![0]
        };
        let mut frame = Frame {
            selection,
            soft_failure: false,
            scoped: false,
        };
        match self.exec(seq, &mut frame)? {
            Flow::Completed => Ok(()),
            // Soft-failure cannot be set at top level, so a failed condition always aborts.
            Flow::ConditionFailed(e) => Err(e),
        }
    }

    fn component(&self, index: usize) -> ComponentRef<'p, 'a> {
        ComponentRef {
            index,
            id: &self.manifest.components[index],
        }
    }

    fn selection_or_error(&self, frame: &Frame) -> Result<Vec<usize>> {
        if frame.selection.is_empty() {
            Err(Error::ComponentIndexOutOfRange { index: 0, count: 0 })
        } else {
            Ok(frame.selection.clone())
        }
    }

    fn exec(&mut self, seq: &CommandSequence<'a>, frame: &mut Frame) -> Result<Flow> {
        for command in &seq.commands {
            let failure = match command {
                Command::SetComponentIndex(sel) => {
                    frame.selection = match sel {
                        IndexSelection::One(i) => vec![*i],
                        IndexSelection::All => (0..self.params.len()).collect(),
                        IndexSelection::List(list) => list.clone(),
                    };
                    None
                }
                Command::OverrideParameters(params) => {
                    self.set_parameters(params, frame, false)?;
                    None
                }
                Command::SetParameters(params) => {
                    self.set_parameters(params, frame, true)?;
                    None
                }
                Command::OverrideMultiple(entries) => {
                    // An encoding of set-component-index + override-parameters per entry.
                    for (index, params) in entries {
                        frame.selection = vec![*index];
                        self.set_parameters(params, frame, false)?;
                    }
                    None
                }
                Command::CopyParams(entries) => {
                    for c in self.selection_or_error(frame)? {
                        for (src, keys) in entries {
                            let from = self.params[*src].clone();
                            for &k in keys {
                                if !self.params[c].copy_from(&from, k) {
                                    return Err(Error::InvalidValue {
                                        context: "copy-params",
                                        element: "parameter key",
                                        reason: "names no per-component parameter",
                                    });
                                }
                            }
                        }
                    }
                    None
                }
                Command::Condition(condition, _) => {
                    let mut failed = None;
                    for c in self.selection_or_error(frame)? {
                        failed = self.condition(*condition, c)?;
                        if failed.is_some() {
                            break;
                        }
                    }
                    failed
                }
                Command::Directive(directive, _) => {
                    for c in self.selection_or_error(frame)? {
                        self.directive(*directive, c)?;
                    }
                    None
                }
                Command::TryEach {
                    branches,
                    empty_fallback,
                } => {
                    let mut failed = None;
                    for c in self.selection_or_error(frame)? {
                        if let Some(e) = self.try_each(branches, *empty_fallback, c)? {
                            failed = Some(e);
                            break;
                        }
                    }
                    failed
                }
                Command::RunSequence(inner) => {
                    let mut failed = None;
                    for c in self.selection_or_error(frame)? {
                        let mut sub = Frame {
                            selection: vec![c],
                            soft_failure: false,
                            scoped: true,
                        };
                        match self.exec(inner, &mut sub)? {
                            Flow::Completed => {}
                            // Forwarded to this sequence, which fails like on a condition.
                            Flow::ConditionFailed(e) if !sub.soft_failure => {
                                failed = Some(e);
                                break;
                            }
                            // With soft-failure set inside, run-sequence only fails on directives.
                            Flow::ConditionFailed(_) => {}
                        }
                    }
                    failed
                }
            };
            // A failed condition ends this sequence; whoever started the sequence decides
            // whether that aborts (soft-failure unset) or not.
            if let Some(e) = failure {
                return Ok(Flow::ConditionFailed(e));
            }
        }
        Ok(Flow::Completed)
    }

    /// Runs try-each for component `c`; returns the failure if no branch completed.
    fn try_each(
        &mut self,
        branches: &[CommandSequence<'a>],
        empty_fallback: bool,
        c: usize,
    ) -> Result<Option<Error>> {
        let mut last = None;
        for branch in branches {
            let mut sub = Frame {
                selection: vec![c],
                soft_failure: true,
                scoped: true,
            };
            let before = self.passed.clone();
            match self.exec(branch, &mut sub)? {
                Flow::Completed => return Ok(None),
                Flow::ConditionFailed(e) if sub.soft_failure => {
                    self.passed = before;
                    last = Some(e);
                }
                // The branch turned soft-failure off: its failure aborts (§8.4.8.15).
                Flow::ConditionFailed(e) => return Err(e),
            }
        }
        if empty_fallback {
            return Ok(None);
        }
        Ok(Some(match last {
            Some(Error::ConditionFailed {
                condition,
                component,
                detail,
            }) => Error::ConditionFailed {
                condition,
                component,
                detail: format!("no try-each alternative applies (last: {detail})"),
            },
            Some(e) => e,
            None => Error::ConditionFailed {
                condition: "try-each",
                component: c,
                detail: String::from("no alternative applies"),
            },
        }))
    }

    fn set_parameters(
        &mut self,
        params: &[Parameter<'a>],
        frame: &mut Frame,
        only_if_unset: bool,
    ) -> Result<()> {
        for p in params {
            if let Parameter::SoftFailure(value) = p {
                if !frame.scoped {
                    return Err(Error::SoftFailureOutsideScope);
                }
                frame.soft_failure = *value;
            }
        }
        if frame.selection.is_empty() && params.iter().any(|p| !p.is_global()) {
            return Err(Error::ComponentIndexOutOfRange { index: 0, count: 0 });
        }
        for &c in &frame.selection {
            for p in params {
                self.params[c].apply(p, only_if_unset);
            }
        }
        Ok(())
    }

    /// Evaluates a condition: `Ok(Some(e))` when it fails, `Err` when evaluating it failed.
    fn condition(&mut self, condition: Condition, c: usize) -> Result<Option<Error>> {
        let outcome = self.evaluate(condition, c)?;
        if outcome.is_ok() {
            if let Some(bits) = self.passed.get_mut(c) {
                *bits |= condition_bit(condition);
            }
        }
        Ok(outcome.err())
    }

    fn evaluate(&mut self, condition: Condition, c: usize) -> Result<Result<()>> {
        let comp = self.component(c);
        let p = self.params[c].clone();
        // §8.4.9: a condition whose parameter is unset fails.
        macro_rules! require {
            ($value:expr, $name:literal) => {
                match $value {
                    Some(v) => v,
                    None => {
                        return Ok(Err(Error::ParameterUnset {
                            command: condition_name(condition),
                            parameter: $name,
                            component: c,
                        }))
                    }
                }
            };
        }
        let failed = |condition: &'static str, detail: String| {
            Err(Error::ConditionFailed {
                condition,
                component: c,
                detail,
            })
        };
        let identity = self.platform.identity().clone();
        Ok(match condition {
            Condition::VendorId => match require!(p.vendor_id, "vendor-id") {
                VendorId::Uuid(u) if u == identity.vendor_id => Ok(()),
                VendorId::Uuid(u) => Err(Error::VendorMismatch {
                    component: c,
                    expected: IdValue::Uuid(u),
                    actual: identity.vendor_id,
                }),
                VendorId::Pen(pen) => Err(Error::VendorMismatch {
                    component: c,
                    expected: IdValue::Pen(pen.to_vec()),
                    actual: identity.vendor_id,
                }),
            },
            Condition::ClassId => {
                let expected = require!(p.class_id, "class-id");
                if expected == identity.class_id {
                    Ok(())
                } else {
                    Err(Error::ClassMismatch {
                        component: c,
                        expected,
                        actual: identity.class_id,
                    })
                }
            }
            Condition::DeviceId => {
                let expected = require!(p.device_id, "device-id");
                if identity.device_id == Some(expected) {
                    Ok(())
                } else {
                    Err(Error::DeviceMismatch {
                        component: c,
                        expected,
                    })
                }
            }
            Condition::ImageMatch => {
                let digest = require!(p.image_digest, "image-digest");
                match self.platform.check_image(comp, &digest, p.image_size)? {
                    ImageCheck::Match => Ok(()),
                    ImageCheck::DigestMismatch => Err(Error::ImageDigestMismatch { component: c }),
                    ImageCheck::SizeMismatch { actual } => Err(Error::ImageSizeMismatch {
                        component: c,
                        expected: p.image_size.unwrap_or(actual),
                        actual,
                    }),
                }
            }
            Condition::ImageNotMatch => {
                let digest = require!(p.image_digest, "image-digest");
                if self.platform.check_image_differs(comp, &digest)? {
                    Ok(())
                } else {
                    Err(Error::ImageNotMatchFailed { component: c })
                }
            }
            Condition::CheckContent => {
                let content = require!(p.content, "content");
                if self.platform.check_content(comp, content)? {
                    Ok(())
                } else {
                    Err(Error::ContentMismatch { component: c })
                }
            }
            Condition::ComponentSlot => {
                let wanted = require!(p.component_slot, "component-slot");
                match self.platform.component_slot(comp) {
                    Some(slot) if slot == wanted => Ok(()),
                    Some(slot) => failed(
                        "component-slot",
                        format!(
                            "the component is slot {slot}, the manifest requires slot {wanted}"
                        ),
                    ),
                    None => failed(
                        "component-slot",
                        format!("the component has no slot, the manifest requires slot {wanted}"),
                    ),
                }
            }
            Condition::UseBefore => {
                let deadline = require!(p.use_before, "use-before");
                match self.platform.now() {
                    Some(now) if now < deadline => Ok(()),
                    Some(now) => failed(
                        "use-before",
                        format!("the manifest expired at {deadline} (device time {now})"),
                    ),
                    None => failed(
                        "use-before",
                        String::from("the device has no trusted time to check the expiry"),
                    ),
                }
            }
            Condition::MinimumBattery => {
                let minimum = require!(p.minimum_battery, "minimum-battery");
                match self.platform.battery_mwh() {
                    Some(level) if level < minimum => failed(
                        "minimum-battery",
                        format!("battery at {level} mWh, the manifest requires {minimum} mWh"),
                    ),
                    _ => Ok(()),
                }
            }
            Condition::UpdateAuthorized => {
                if self.platform.update_authorized(comp, p.update_priority) {
                    Ok(())
                } else {
                    failed(
                        "update-authorized",
                        String::from("the device's application does not authorise the update now"),
                    )
                }
            }
            Condition::Version => {
                let required = require!(p.version, "version");
                match self.platform.component_version(comp) {
                    Some(v) if required.accepts(&v) => Ok(()),
                    Some(v) => failed(
                        "version",
                        format!(
                            "installed version {v:?} does not satisfy {:?} {:?}",
                            required.comparison, required.version
                        ),
                    ),
                    None => failed(
                        "version",
                        String::from("the installed version of the component is unknown"),
                    ),
                }
            }
            Condition::Abort => Err(Error::Aborted),
            // Only inspection decodes these; processing refuses dependencies.
            Condition::DependencyIntegrity | Condition::IsDependency => {
                Err(Error::DependenciesNotSupported(condition_name(condition)))
            }
        })
    }

    fn directive(&mut self, directive: Directive, c: usize) -> Result<()> {
        let comp = self.component(c);
        let params = self.params[c].clone();
        let unset = |parameter| Error::ParameterUnset {
            command: directive_name(directive),
            parameter,
            component: c,
        };
        // Write and copy decrypt with encryption-info (firmware-encryption §4): it is decoded
        // here, so that malformed or unsupported info is refused alike on every platform,
        // before any of them touches a component.
        if let (Directive::Write | Directive::Copy, Some(info)) =
            (directive, params.encryption_info)
        {
            EncryptionInfo::decode(info)?;
        }
        match directive {
            Directive::Write => {
                params.content.ok_or_else(|| unset("content"))?;
                self.platform.write(comp, &params)
            }
            Directive::Fetch => {
                let uri = params.uri.ok_or_else(|| unset("uri"))?;
                let source = if uri.starts_with('#') {
                    let data = self
                        .envelope
                        .integrated(uri)
                        .ok_or_else(|| Error::IntegratedPayloadMissing(uri.into()))?;
                    FetchSource::Integrated { uri, data }
                } else {
                    FetchSource::Uri(uri)
                };
                self.platform.fetch(comp, source, &params)
            }
            Directive::Copy | Directive::Swap => {
                let src = params
                    .source_component
                    .ok_or_else(|| unset("source-component"))?;
                let src = usize::try_from(src)
                    .ok()
                    .filter(|&s| s < self.params.len())
                    .ok_or(Error::ComponentIndexOutOfRange {
                        index: src,
                        count: self.params.len(),
                    })?;
                if src == c {
                    return Err(Error::InvalidValue {
                        context: directive_name(directive),
                        element: "source-component",
                        reason: "a component cannot be its own source",
                    });
                }
                let source = self.component(src);
                if directive == Directive::Copy {
                    self.platform.copy(comp, source, &params)
                } else {
                    self.platform.swap(comp, source, &params)
                }
            }
            Directive::Invoke => self.platform.invoke(comp, &params),
            Directive::Wait => {
                params.wait_info.ok_or_else(|| unset("wait-info"))?;
                self.platform.wait(comp, &params)
            }
            Directive::Unlink => self.platform.unlink(comp),
            Directive::ProcessDependency => {
                Err(Error::DependenciesNotSupported(directive_name(directive)))
            }
        }
    }
}

fn severable<'s, 'a>(
    s: &'s Severable<'a, CommandSequence<'a>>,
    section: Section,
) -> Result<Option<&'s CommandSequence<'a>>> {
    match s {
        Severable::Absent => Ok(None),
        Severable::Present { value, .. } => Ok(Some(value)),
        Severable::Severed(_) => Err(Error::SeveredElementAbsent(section.name())),
    }
}

fn condition_name(c: Condition) -> &'static str {
    crate::command::command_name(c.key())
}

fn directive_name(d: Directive) -> &'static str {
    crate::command::command_name(d.key())
}

impl Manifest<'_> {
    /// Rejects a manifest whose sequence number is below `floor` (§8.4.2: reject lower than
    /// the current one; an equal number re-applies the same manifest, §6.3.1).
    pub fn check_sequence_number(&self, floor: u64) -> Result<()> {
        if self.sequence_number < floor {
            Err(Error::Rollback {
                sequence: self.sequence_number,
                floor,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticated;
    use crate::command::ReportingPolicy;
    use crate::digest::DigestAlg;
    use crate::envelope::{Framing, Wrapped};

    const RP: ReportingPolicy = ReportingPolicy(15);

    struct Memory {
        identity: DeviceIdentity,
        slot: u64,
        contents: Vec<Vec<u8>>,
        fetched: Vec<usize>,
    }

    impl Platform for Memory {
        fn identity(&self) -> &DeviceIdentity {
            &self.identity
        }
        fn component_slot(&self, _: ComponentRef<'_, '_>) -> Option<u64> {
            Some(self.slot)
        }
        fn check_image(
            &mut self,
            c: ComponentRef<'_, '_>,
            d: &SuitDigest<'_>,
            size: Option<u64>,
        ) -> Result<ImageCheck> {
            let data = &self.contents[c.index];
            if size.is_some_and(|s| s != data.len() as u64) {
                return Ok(ImageCheck::SizeMismatch {
                    actual: data.len() as u64,
                });
            }
            Ok(if d.matches_data(data) {
                ImageCheck::Match
            } else {
                ImageCheck::DigestMismatch
            })
        }
        fn check_content(&mut self, c: ComponentRef<'_, '_>, expected: &[u8]) -> Result<bool> {
            Ok(self.contents[c.index] == expected)
        }
        fn fetch(
            &mut self,
            c: ComponentRef<'_, '_>,
            _: FetchSource<'_>,
            _: &ComponentParams<'_>,
        ) -> Result<()> {
            self.fetched.push(c.index);
            Ok(())
        }
        fn write(&mut self, c: ComponentRef<'_, '_>, p: &ComponentParams<'_>) -> Result<()> {
            self.contents[c.index] = p.content.unwrap_or_default().to_vec();
            Ok(())
        }
        fn copy(
            &mut self,
            c: ComponentRef<'_, '_>,
            s: ComponentRef<'_, '_>,
            _: &ComponentParams<'_>,
        ) -> Result<()> {
            self.contents[c.index] = self.contents[s.index].clone();
            Ok(())
        }
    }

    fn id(n: u8) -> Uuid {
        Uuid([n; 16])
    }

    fn device(components: usize) -> Memory {
        Memory {
            identity: DeviceIdentity {
                vendor_id: id(1),
                class_id: id(2),
                device_id: None,
            },
            slot: 0,
            contents: vec![b"hello".to_vec(); components],
            fetched: Vec::new(),
        }
    }

    fn seq(commands: Vec<Command<'static>>) -> CommandSequence<'static> {
        CommandSequence { commands }
    }

    static PARTS: [&[u8]; 1] = [b"c"];

    /// Runs `install` (after `shared`) on a manifest with `components` components.
    fn run(
        components: usize,
        shared: Vec<Command<'static>>,
        install: Vec<Command<'static>>,
        dev: &mut Memory,
    ) -> Result<()> {
        let manifest = Manifest {
            sequence_number: 1,
            components: (0..components)
                .map(|_| ComponentId(PARTS.to_vec()))
                .collect(),
            shared_sequence: Some(seq(shared)),
            reference_uri: None,
            manifest_component_id: None,
            set_version: None,
            validate: None,
            load: None,
            invoke: None,
            uninstall: None,
            payload_fetch: Severable::Absent,
            install: Severable::Present {
                value: seq(install),
                severed: false,
            },
            candidate_verification: Severable::Absent,
            text: Severable::Absent,
            coswid: Severable::Absent,
        };
        let envelope = Envelope {
            framing: Framing::TaggedEnvelope,
            auth: None,
            manifest: Wrapped {
                content: &[],
                encoding: &[],
            },
            severed: Vec::new(),
            integrated: Vec::new(),
        };
        let authentic = Authentic {
            envelope,
            manifest,
            authenticated: Authenticated {
                block: 1,
                anchor: 0,
                alg: -35,
            },
        };
        Processor::new(&authentic, dev).run(&[Section::Install])
    }

    fn cond(c: Condition) -> Command<'static> {
        Command::Condition(c, RP)
    }

    fn set(p: Vec<Parameter<'static>>) -> Command<'static> {
        Command::OverrideParameters(p)
    }

    fn vendor(n: u8) -> Vec<Command<'static>> {
        vec![
            set(vec![Parameter::VendorId(VendorId::Uuid(id(n)))]),
            cond(Condition::VendorId),
        ]
    }

    fn try_each(branches: Vec<Vec<Command<'static>>>, empty_fallback: bool) -> Command<'static> {
        Command::TryEach {
            branches: branches.into_iter().map(seq).collect(),
            empty_fallback,
        }
    }

    fn soft(v: bool) -> Command<'static> {
        set(vec![Parameter::SoftFailure(v)])
    }

    #[test]
    fn try_each_takes_the_first_branch_that_completes() {
        let mut dev = device(1);
        let fetch = Command::Directive(Directive::Fetch, RP);
        let uri = set(vec![Parameter::Uri("http://x")]);
        let branches = vec![
            [vendor(9), vec![uri.clone(), fetch.clone()]].concat(),
            [vendor(1), vec![uri, fetch]].concat(),
        ];
        run(1, vec![], vec![try_each(branches, false)], &mut dev).unwrap();
        // Only the second branch's fetch ran.
        assert_eq!(dev.fetched, vec![0]);
    }

    #[test]
    fn try_each_without_applicable_branch_fails_unless_nil_ends_it() {
        let err = run(
            1,
            vec![],
            vec![try_each(vec![vendor(8), vendor(9)], false)],
            &mut device(1),
        )
        .unwrap_err();
        assert!(matches!(err, Error::VendorMismatch { .. }), "{err:?}");
        run(
            1,
            vec![],
            vec![try_each(vec![vendor(8), vendor(9)], true)],
            &mut device(1),
        )
        .unwrap();
    }

    #[test]
    fn a_branch_that_turns_soft_failure_off_aborts_on_failure() {
        let strict = [vec![soft(false)], vendor(9)].concat();
        let err = run(
            1,
            vec![],
            vec![try_each(vec![strict, vendor(1)], false)],
            &mut device(1),
        )
        .unwrap_err();
        assert!(matches!(err, Error::VendorMismatch { .. }));
    }

    #[test]
    fn run_sequence_forwards_a_failure_to_the_enclosing_branch() {
        let inner = Command::RunSequence(seq(vendor(9)));
        run(
            1,
            vec![],
            vec![try_each(vec![vec![inner.clone()], vendor(1)], false)],
            &mut device(1),
        )
        .unwrap();
        // At top level the forwarded failure aborts.
        let err = run(1, vec![], vec![inner], &mut device(1)).unwrap_err();
        assert!(matches!(err, Error::VendorMismatch { .. }));
    }

    #[test]
    fn run_sequence_with_soft_failure_only_fails_on_directives() {
        let tolerant = Command::RunSequence(seq([vec![soft(true)], vendor(9)].concat()));
        run(1, vec![], vec![tolerant], &mut device(1)).unwrap();
        let failing_directive = Command::RunSequence(seq(vec![
            soft(true),
            Command::Directive(Directive::Fetch, RP),
        ]));
        let err = run(1, vec![], vec![failing_directive], &mut device(1)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ParameterUnset {
                    parameter: "uri",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn soft_failure_outside_try_each_aborts() {
        assert_eq!(
            run(1, vec![], vec![soft(true)], &mut device(1)).unwrap_err(),
            Error::SoftFailureOutsideScope
        );
        assert_eq!(
            run(1, vec![soft(false)], vec![], &mut device(1)).unwrap_err(),
            Error::SoftFailureOutsideScope
        );
    }

    #[test]
    fn conditions_with_unset_parameters_fail() {
        let err = run(1, vec![], vec![cond(Condition::ImageMatch)], &mut device(1)).unwrap_err();
        assert_eq!(
            err,
            Error::ParameterUnset {
                command: "condition-image-match",
                parameter: "image-digest",
                component: 0
            }
        );
        // ... as conditions: try-each moves on.
        run(
            1,
            vec![],
            vec![try_each(
                vec![vec![cond(Condition::ClassId)], vec![]],
                false,
            )],
            &mut device(1),
        )
        .unwrap();
    }

    #[test]
    fn index_true_runs_on_every_component() {
        let mut dev = device(2);
        dev.contents[1] = b"other".to_vec();
        let digest = DigestAlg::Sha256.digest(b"hello");
        let bytes: &'static [u8] =
            alloc::boxed::Box::leak(digest.as_bytes().to_vec().into_boxed_slice());
        let d = SuitDigest {
            alg: DigestAlg::Sha256,
            bytes,
        };
        let all = Command::SetComponentIndex(IndexSelection::All);
        let install = vec![
            all,
            set(vec![Parameter::ImageDigest(d)]),
            cond(Condition::ImageMatch),
        ];
        let err = run(2, vec![], install.clone(), &mut dev).unwrap_err();
        assert_eq!(err, Error::ImageDigestMismatch { component: 1 });
        dev.contents[1] = b"hello".to_vec();
        run(2, vec![], install, &mut dev).unwrap();
    }

    #[test]
    fn set_parameters_does_not_override() {
        let install = vec![
            set(vec![Parameter::VendorId(VendorId::Uuid(id(1)))]),
            Command::SetParameters(vec![Parameter::VendorId(VendorId::Uuid(id(9)))]),
            cond(Condition::VendorId),
        ];
        run(1, vec![], install, &mut device(1)).unwrap();
    }

    #[test]
    fn write_then_check_content() {
        let install = vec![
            set(vec![Parameter::Content(b"new content")]),
            Command::Directive(Directive::Write, RP),
            cond(Condition::CheckContent),
        ];
        let mut dev = device(1);
        run(1, vec![], install, &mut dev).unwrap();
        assert_eq!(dev.contents[0], b"new content");
    }

    #[test]
    fn copy_needs_a_valid_source() {
        let copy = Command::Directive(Directive::Copy, RP);
        let i0 = Command::SetComponentIndex(IndexSelection::One(0));
        let err = run(2, vec![], vec![i0.clone(), copy.clone()], &mut device(2)).unwrap_err();
        assert!(matches!(
            err,
            Error::ParameterUnset {
                parameter: "source-component",
                ..
            }
        ));
        let err = run(
            2,
            vec![],
            vec![
                i0.clone(),
                set(vec![Parameter::SourceComponent(5)]),
                copy.clone(),
            ],
            &mut device(2),
        )
        .unwrap_err();
        assert_eq!(err, Error::ComponentIndexOutOfRange { index: 5, count: 2 });
        let err = run(
            2,
            vec![],
            vec![
                i0.clone(),
                set(vec![Parameter::SourceComponent(0)]),
                copy.clone(),
            ],
            &mut device(2),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidValue {
                element: "source-component",
                ..
            }
        ));
        let mut dev = device(2);
        dev.contents[1] = b"source".to_vec();
        run(
            2,
            vec![],
            vec![i0, set(vec![Parameter::SourceComponent(1)]), copy],
            &mut dev,
        )
        .unwrap();
        assert_eq!(dev.contents[0], b"source");
    }

    #[test]
    fn missing_integrated_payload_is_reported() {
        let install = vec![
            set(vec![Parameter::Uri("#absent")]),
            Command::Directive(Directive::Fetch, RP),
        ];
        let err = run(1, vec![], install, &mut device(1)).unwrap_err();
        assert_eq!(err, Error::IntegratedPayloadMissing("#absent".into()));
    }

    #[test]
    fn abort_is_a_condition() {
        let err = run(1, vec![], vec![cond(Condition::Abort)], &mut device(1)).unwrap_err();
        assert_eq!(err, Error::Aborted);
        run(
            1,
            vec![],
            vec![try_each(vec![vec![cond(Condition::Abort)], vec![]], false)],
            &mut device(1),
        )
        .unwrap();
    }

    #[test]
    fn rollback_floor() {
        let m = Manifest {
            sequence_number: 5,
            components: Vec::new(),
            shared_sequence: None,
            reference_uri: None,
            manifest_component_id: None,
            set_version: None,
            validate: None,
            load: None,
            invoke: None,
            uninstall: None,
            payload_fetch: Severable::Absent,
            install: Severable::Absent,
            candidate_verification: Severable::Absent,
            text: Severable::Absent,
            coswid: Severable::Absent,
        };
        m.check_sequence_number(5).unwrap();
        assert_eq!(
            m.check_sequence_number(6).unwrap_err(),
            Error::Rollback {
                sequence: 5,
                floor: 6
            }
        );
    }
}
