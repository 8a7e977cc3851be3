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
//!   the whole procedure (§6.4); a failed directive always aborts;
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
    /// Ended early by a condition failure under soft-failure.
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
}

impl<'p, 'a, P: Platform> Processor<'p, 'a, P> {
    /// A processor with cleared parameters.
    pub fn new(authentic: &'p Authentic<'a>, platform: &'p mut P) -> Self {
        let params = vec![ComponentParams::default(); authentic.manifest.components.len()];
        Processor {
            manifest: &authentic.manifest,
            envelope: &authentic.envelope,
            platform,
            params,
        }
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
                            // With soft-failure set inside, run-sequence only fails on directives.
                            Flow::ConditionFailed(e) if !sub.soft_failure => {
                                failed = Some(e);
                                break;
                            }
                            Flow::ConditionFailed(_) => {}
                        }
                    }
                    failed
                }
            };
            if let Some(e) = failure {
                return if frame.soft_failure {
                    Ok(Flow::ConditionFailed(e))
                } else {
                    Err(e)
                };
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
            match self.exec(branch, &mut sub)? {
                Flow::Completed => return Ok(None),
                Flow::ConditionFailed(e) => last = Some(e),
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
        Ok(self.evaluate(condition, c)?.err())
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
                match self.platform.check_image(comp, &digest, None)? {
                    ImageCheck::Match => Err(Error::ImageNotMatchFailed { component: c }),
                    _ => Ok(()),
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
