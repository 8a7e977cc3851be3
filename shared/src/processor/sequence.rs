//! Sequencing (§6.4, §8.4.10): commands in order over the selected components, try-each,
//! run-sequence, soft-failure scoping and the parameter directives.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{Platform, Processor};
use crate::command::{Command, CommandSequence, IndexSelection};
use crate::error::{Error, Result};
use crate::params::Parameter;

/// Outcome of a sequence that did not abort.
pub(super) enum Flow {
    /// Ran to its end.
    Completed,
    /// Ended early by a failed condition; the caller applies the soft-failure rules.
    ConditionFailed(Error),
}

/// Execution state of one sequence.
pub(super) struct Frame {
    pub(super) selection: Vec<usize>,
    pub(super) soft_failure: bool,
    /// Inside try-each or run-sequence, where soft-failure may be set.
    pub(super) scoped: bool,
}

impl<'p, 'a, P: Platform> Processor<'p, 'a, P> {
    pub(super) fn exec(&mut self, seq: &CommandSequence<'a>, frame: &mut Frame) -> Result<Flow> {
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
                        self.at_component(c);
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
                        self.at_component(c);
                        failed = self.condition(*condition, c)?;
                        if failed.is_some() {
                            break;
                        }
                    }
                    failed
                }
                Command::Directive(directive, _) => {
                    for c in self.selection_or_error(frame)? {
                        self.at_component(c);
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
                        self.at_component(c);
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
                        self.at_component(c);
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
}
