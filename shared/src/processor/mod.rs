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

mod conditions;
mod directives;
mod platform;
mod sequence;
#[cfg(test)]
mod tests;

use alloc::vec;
use alloc::vec::Vec;

use crate::command::{CommandSequence, Condition, Directive};
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::manifest::{Authentic, Manifest, Severable};
use crate::params::ComponentParams;

pub use platform::{
    ComponentRef, DeviceIdentity, FetchSource, ImageCheck, Location, Platform, Section, Sequence,
};
use sequence::{Flow, Frame};

/// Interprets one authenticated manifest against a platform.
pub struct Processor<'p, 'a, P: Platform> {
    manifest: &'p Manifest<'a>,
    envelope: &'p Envelope<'a>,
    platform: &'p mut P,
    params: Vec<ComponentParams<'a>>,
    /// Per component, the conditions that passed on the path taken (one bit per command
    /// number); a try-each branch that fails takes its bits back.
    passed: Vec<u32>,
    /// Where processing is (after a failed run: where it failed).
    location: Option<Location>,
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
            location: None,
        }
    }

    /// Whether `condition` passed for `component` on the path the run took: in a sequence that
    /// went on, not in a try-each branch that was abandoned.
    pub fn passed(&self, component: usize, condition: Condition) -> bool {
        self.passed
            .get(component)
            .is_some_and(|bits| bits & condition_bit(condition) != 0)
    }

    /// Where the last [`Processor::run`] stopped: after a failure, the sequence and component
    /// of the command that failed (for a SUIT report's result record); `None` before a run
    /// entered any sequence.
    pub fn location(&self) -> Option<Location> {
        self.location
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
            self.enter(Sequence::Section(section));
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
                    self.enter(Sequence::Shared);
                    self.run_top_level(shared)?;
                }
                self.enter(Sequence::Section(section));
                self.run_top_level(seq)?;
            }
        }
        Ok(())
    }

    /// Whether the manifest has `section`'s sequence (present, or severed).
    pub fn has_section(&self, section: Section) -> bool {
        let m = self.manifest;
        match section {
            Section::PayloadFetch => !matches!(m.payload_fetch, Severable::Absent),
            Section::CandidateVerification => {
                !matches!(m.candidate_verification, Severable::Absent)
            }
            Section::Install => !matches!(m.install, Severable::Absent),
            Section::Validate => m.validate.is_some(),
            Section::Load => m.load.is_some(),
            Section::Invoke => m.invoke.is_some(),
        }
    }

    /// Runs the shared sequence alone: the applicability checks of a manifest that has none
    /// of the sections a caller runs.
    pub fn run_shared(&mut self) -> Result<()> {
        if let Some(shared) = &self.manifest.shared_sequence {
            self.enter(Sequence::Shared);
            self.run_top_level(shared)?;
        }
        Ok(())
    }

    fn enter(&mut self, sequence: Sequence) {
        self.location = Some(Location {
            sequence,
            component: None,
        });
    }

    /// Notes that the next command runs for component `c`.
    fn at_component(&mut self, c: usize) {
        if let Some(location) = self.location.as_mut() {
            location.component = Some(c);
        }
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

    fn component(&self, index: usize) -> ComponentRef<'p> {
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
