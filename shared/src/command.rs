//! SUIT command sequences: typed decoding of conditions and directives
//! (draft-ietf-suit-manifest §8.4.9–8.4.10, update-management, trust-domains).
//!
//! A sequence is decoded completely before anything runs: an unknown command, a custom command,
//! a dependency command, a component index beyond the component list or nesting deeper than
//! [`MAX_NESTING`] rejects the whole manifest (update-management §5: a recipient that meets an
//! unimplemented command MUST reject the manifest).

use alloc::vec::Vec;

use minicbor::data::Type;

use crate::cbor::{Key, Reader};
use crate::error::{Error, Result};
use crate::params::{decode_parameters, Parameter};

/// Deepest nesting of try-each / run-sequence.
pub const MAX_NESTING: usize = 8;

/// Command numbers.
pub mod key {
    /// Condition vendor-identifier.
    pub const VENDOR_ID: i64 = 1;
    /// Condition class-identifier.
    pub const CLASS_ID: i64 = 2;
    /// Condition image-match.
    pub const IMAGE_MATCH: i64 = 3;
    /// Condition use-before.
    pub const USE_BEFORE: i64 = 4;
    /// Condition component-slot.
    pub const COMPONENT_SLOT: i64 = 5;
    /// Condition check-content.
    pub const CHECK_CONTENT: i64 = 6;
    /// Condition dependency-integrity (trust-domains).
    pub const DEPENDENCY_INTEGRITY: i64 = 7;
    /// Condition is-dependency (trust-domains).
    pub const IS_DEPENDENCY: i64 = 8;
    /// Directive process-dependency (trust-domains).
    pub const PROCESS_DEPENDENCY: i64 = 11;
    /// Directive set-component-index.
    pub const SET_COMPONENT_INDEX: i64 = 12;
    /// Condition abort.
    pub const ABORT: i64 = 14;
    /// Directive try-each.
    pub const TRY_EACH: i64 = 15;
    /// Directive write.
    pub const WRITE: i64 = 18;
    /// Directive set-parameters (trust-domains).
    pub const SET_PARAMETERS: i64 = 19;
    /// Directive override-parameters.
    pub const OVERRIDE_PARAMETERS: i64 = 20;
    /// Directive fetch.
    pub const FETCH: i64 = 21;
    /// Directive copy.
    pub const COPY: i64 = 22;
    /// Directive invoke.
    pub const INVOKE: i64 = 23;
    /// Condition device-identifier.
    pub const DEVICE_ID: i64 = 24;
    /// Condition image-not-match (update-management).
    pub const IMAGE_NOT_MATCH: i64 = 25;
    /// Condition minimum-battery (update-management).
    pub const MINIMUM_BATTERY: i64 = 26;
    /// Condition update-authorized (update-management).
    pub const UPDATE_AUTHORIZED: i64 = 27;
    /// Condition version (update-management).
    pub const VERSION: i64 = 28;
    /// Directive wait (update-management).
    pub const WAIT: i64 = 29;
    /// Directive swap.
    pub const SWAP: i64 = 31;
    /// Directive run-sequence.
    pub const RUN_SEQUENCE: i64 = 32;
    /// Directive unlink (trust-domains).
    pub const UNLINK: i64 = 33;
    /// Directive override-multiple (update-management).
    pub const OVERRIDE_MULTIPLE: i64 = 34;
    /// Directive copy-params (update-management).
    pub const COPY_PARAMS: i64 = 35;
}

/// Conditions: checks without side effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// vendor-identifier (1).
    VendorId,
    /// class-identifier (2).
    ClassId,
    /// image-match (3).
    ImageMatch,
    /// use-before (4).
    UseBefore,
    /// component-slot (5).
    ComponentSlot,
    /// check-content (6).
    CheckContent,
    /// abort (14): always fails.
    Abort,
    /// device-identifier (24).
    DeviceId,
    /// image-not-match (25).
    ImageNotMatch,
    /// minimum-battery (26).
    MinimumBattery,
    /// update-authorized (27).
    UpdateAuthorized,
    /// version (28).
    Version,
    /// dependency-integrity (7, trust-domains): decoded for inspection only, never processed.
    DependencyIntegrity,
    /// is-dependency (8, trust-domains): decoded for inspection only, never processed.
    IsDependency,
}

impl Condition {
    /// The command number.
    pub fn key(self) -> i64 {
        match self {
            Condition::VendorId => key::VENDOR_ID,
            Condition::ClassId => key::CLASS_ID,
            Condition::ImageMatch => key::IMAGE_MATCH,
            Condition::UseBefore => key::USE_BEFORE,
            Condition::ComponentSlot => key::COMPONENT_SLOT,
            Condition::CheckContent => key::CHECK_CONTENT,
            Condition::Abort => key::ABORT,
            Condition::DeviceId => key::DEVICE_ID,
            Condition::ImageNotMatch => key::IMAGE_NOT_MATCH,
            Condition::MinimumBattery => key::MINIMUM_BATTERY,
            Condition::UpdateAuthorized => key::UPDATE_AUTHORIZED,
            Condition::Version => key::VERSION,
            Condition::DependencyIntegrity => key::DEPENDENCY_INTEGRITY,
            Condition::IsDependency => key::IS_DEPENDENCY,
        }
    }
}

/// Directives with a reporting policy argument: they act on the current component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// write (18): content into the component.
    Write,
    /// fetch (21): from the URI into the component.
    Fetch,
    /// copy (22): from the source component.
    Copy,
    /// invoke (23).
    Invoke,
    /// wait (29).
    Wait,
    /// swap (31): with the source component.
    Swap,
    /// unlink (33).
    Unlink,
    /// process-dependency (11, trust-domains): decoded for inspection only, never processed.
    ProcessDependency,
}

impl Directive {
    /// The command number.
    pub fn key(self) -> i64 {
        match self {
            Directive::Write => key::WRITE,
            Directive::Fetch => key::FETCH,
            Directive::Copy => key::COPY,
            Directive::Invoke => key::INVOKE,
            Directive::Wait => key::WAIT,
            Directive::Swap => key::SWAP,
            Directive::Unlink => key::UNLINK,
            Directive::ProcessDependency => key::PROCESS_DEPENDENCY,
        }
    }
}

/// Readable name of a command number.
pub fn command_name(k: i64) -> &'static str {
    match k {
        key::VENDOR_ID => "condition-vendor-identifier",
        key::CLASS_ID => "condition-class-identifier",
        key::IMAGE_MATCH => "condition-image-match",
        key::USE_BEFORE => "condition-use-before",
        key::COMPONENT_SLOT => "condition-component-slot",
        key::CHECK_CONTENT => "condition-check-content",
        key::DEPENDENCY_INTEGRITY => "condition-dependency-integrity",
        key::IS_DEPENDENCY => "condition-is-dependency",
        key::PROCESS_DEPENDENCY => "directive-process-dependency",
        key::SET_COMPONENT_INDEX => "directive-set-component-index",
        key::ABORT => "condition-abort",
        key::TRY_EACH => "directive-try-each",
        key::WRITE => "directive-write",
        key::SET_PARAMETERS => "directive-set-parameters",
        key::OVERRIDE_PARAMETERS => "directive-override-parameters",
        key::FETCH => "directive-fetch",
        key::COPY => "directive-copy",
        key::INVOKE => "directive-invoke",
        key::DEVICE_ID => "condition-device-identifier",
        key::IMAGE_NOT_MATCH => "condition-image-not-match",
        key::MINIMUM_BATTERY => "condition-minimum-battery",
        key::UPDATE_AUTHORIZED => "condition-update-authorized",
        key::VERSION => "condition-version",
        key::WAIT => "directive-wait",
        key::SWAP => "directive-swap",
        key::RUN_SEQUENCE => "directive-run-sequence",
        key::UNLINK => "directive-unlink",
        key::OVERRIDE_MULTIPLE => "directive-override-multiple",
        key::COPY_PARAMS => "directive-copy-params",
        k if k < 0 => "custom command",
        _ => "unknown command",
    }
}

/// SUIT_Rep_Policy: what the reporting engine should record about a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportingPolicy(pub u64);

impl ReportingPolicy {
    /// Send a record when the command succeeds.
    pub fn record_on_success(self) -> bool {
        self.0 & 1 != 0
    }
    /// Send a record when the command fails.
    pub fn record_on_failure(self) -> bool {
        self.0 & 2 != 0
    }
    /// Send system information when the command succeeds.
    pub fn sysinfo_on_success(self) -> bool {
        self.0 & 4 != 0
    }
    /// Send system information when the command fails.
    pub fn sysinfo_on_failure(self) -> bool {
        self.0 & 8 != 0
    }
}

/// Argument of set-component-index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexSelection {
    /// One component.
    One(usize),
    /// All components, in list order (`true`).
    All,
    /// The listed components, in the listed order.
    List(Vec<usize>),
}

/// One command with its decoded argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// A condition.
    Condition(Condition, ReportingPolicy),
    /// A directive acting on the current component(s).
    Directive(Directive, ReportingPolicy),
    /// set-component-index.
    SetComponentIndex(IndexSelection),
    /// override-parameters: replace values.
    OverrideParameters(Vec<Parameter<'a>>),
    /// set-parameters: set values that are unset.
    SetParameters(Vec<Parameter<'a>>),
    /// override-multiple: component index → parameters.
    OverrideMultiple(Vec<(usize, Vec<Parameter<'a>>)>),
    /// copy-params: source component index → parameter keys.
    CopyParams(Vec<(usize, Vec<i64>)>),
    /// try-each: branches, and whether a trailing nil lets all of them fail.
    TryEach {
        /// The alternatives, in order.
        branches: Vec<CommandSequence<'a>>,
        /// A trailing nil: succeed even if no branch does.
        empty_fallback: bool,
    },
    /// run-sequence.
    RunSequence(CommandSequence<'a>),
}

/// A decoded command sequence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandSequence<'a> {
    /// The commands, in order.
    pub commands: Vec<Command<'a>>,
}

/// Context for decoding a sequence.
#[derive(Debug, Clone, Copy)]
pub struct SequenceRules {
    /// Number of components in the manifest.
    pub components: usize,
    /// Whether this is (inside) the shared sequence, with its restrictions.
    pub shared: bool,
    /// Whether dependency commands decode (for inspection) instead of rejecting the sequence.
    pub dependencies: bool,
}

impl<'a> CommandSequence<'a> {
    /// Decodes `bstr .cbor SUIT_Command_Sequence` content named `context`.
    pub fn decode(bytes: &'a [u8], context: &'static str, rules: SequenceRules) -> Result<Self> {
        decode_sequence(bytes, context, rules, 0)
    }
}

fn decode_sequence<'a>(
    bytes: &'a [u8],
    context: &'static str,
    rules: SequenceRules,
    depth: usize,
) -> Result<CommandSequence<'a>> {
    if depth > MAX_NESTING {
        return Err(Error::LimitExceeded {
            what: "nesting of try-each/run-sequence",
            limit: MAX_NESTING,
        });
    }
    Reader::decode_exact(bytes, context, |r| {
        let n = r.array()?;
        if n % 2 != 0 {
            return Err(Error::InvalidValue {
                context,
                element: "command sequence",
                reason: "must hold command/argument pairs",
            });
        }
        let mut commands = Vec::new();
        for _ in 0..n / 2 {
            let at = r.position();
            if !r.is_int() {
                return Err(Error::Cbor {
                    context,
                    offset: at,
                    expected: "a command number",
                });
            }
            let k = r.i64()?;
            commands.push(decode_command(r, k, rules, depth)?);
        }
        Ok(CommandSequence { commands })
    })
}

fn shared_forbidden<T>(k: i64) -> Result<T> {
    Err(Error::ForbiddenInSharedSequence(command_name(k)))
}

fn decode_command<'a>(
    r: &mut Reader<'a>,
    k: i64,
    rules: SequenceRules,
    depth: usize,
) -> Result<Command<'a>> {
    let policy = |r: &mut Reader<'a>| r.u64().map(ReportingPolicy);
    let condition = |r: &mut Reader<'a>, c| Ok(Command::Condition(c, policy(r)?));
    let directive = |r: &mut Reader<'a>, d| {
        if rules.shared {
            return shared_forbidden(k);
        }
        Ok(Command::Directive(d, policy(r)?))
    };
    match k {
        key::VENDOR_ID => condition(r, Condition::VendorId),
        key::CLASS_ID => condition(r, Condition::ClassId),
        key::IMAGE_MATCH => condition(r, Condition::ImageMatch),
        key::USE_BEFORE => condition(r, Condition::UseBefore),
        key::COMPONENT_SLOT => condition(r, Condition::ComponentSlot),
        key::CHECK_CONTENT => condition(r, Condition::CheckContent),
        key::ABORT => condition(r, Condition::Abort),
        key::DEVICE_ID => condition(r, Condition::DeviceId),
        key::IMAGE_NOT_MATCH => condition(r, Condition::ImageNotMatch),
        key::MINIMUM_BATTERY => condition(r, Condition::MinimumBattery),
        key::UPDATE_AUTHORIZED => condition(r, Condition::UpdateAuthorized),
        key::VERSION => condition(r, Condition::Version),
        key::WRITE => directive(r, Directive::Write),
        key::FETCH => directive(r, Directive::Fetch),
        key::COPY => directive(r, Directive::Copy),
        key::INVOKE => directive(r, Directive::Invoke),
        key::WAIT => directive(r, Directive::Wait),
        key::SWAP => directive(r, Directive::Swap),
        key::UNLINK => directive(r, Directive::Unlink),
        key::DEPENDENCY_INTEGRITY | key::IS_DEPENDENCY | key::PROCESS_DEPENDENCY
            if !rules.dependencies =>
        {
            Err(Error::DependenciesNotSupported(command_name(k)))
        }
        key::DEPENDENCY_INTEGRITY => condition(r, Condition::DependencyIntegrity),
        key::IS_DEPENDENCY => condition(r, Condition::IsDependency),
        key::PROCESS_DEPENDENCY => directive(r, Directive::ProcessDependency),
        key::SET_COMPONENT_INDEX => Ok(Command::SetComponentIndex(decode_index(
            r,
            rules.components,
        )?)),
        key::OVERRIDE_PARAMETERS => Ok(Command::OverrideParameters(parameters(r, rules)?)),
        key::SET_PARAMETERS => Ok(Command::SetParameters(parameters(r, rules)?)),
        key::OVERRIDE_MULTIPLE => {
            if rules.shared {
                return shared_forbidden(k);
            }
            let mut entries = r.map()?;
            let mut out = Vec::new();
            while entries.next_entry() {
                let index = component_key(r, &mut entries, rules.components)?;
                out.push((index, parameters(r, rules)?));
            }
            Ok(Command::OverrideMultiple(out))
        }
        key::COPY_PARAMS => {
            if rules.shared {
                return shared_forbidden(k);
            }
            let mut entries = r.map()?;
            let mut out = Vec::new();
            while entries.next_entry() {
                let index = component_key(r, &mut entries, rules.components)?;
                let n = r.array()?;
                let mut keys = Vec::new();
                for _ in 0..n {
                    keys.push(r.i64()?);
                }
                out.push((index, keys));
            }
            Ok(Command::CopyParams(out))
        }
        key::TRY_EACH => {
            let n = r.array()?;
            let mut branches = Vec::new();
            let mut empty_fallback = false;
            for i in 0..n {
                if r.is(Type::Null) && i + 1 == n && n >= 2 {
                    r.null()?;
                    empty_fallback = true;
                } else {
                    branches.push(decode_sequence(
                        r.bytes()?,
                        "try-each branch",
                        rules,
                        depth + 1,
                    )?);
                }
            }
            let enough = branches.len() >= 2 || (empty_fallback && !branches.is_empty());
            if !enough {
                return Err(Error::InvalidValue {
                    context: r.context(),
                    element: "try-each",
                    reason: "needs at least two alternatives (or one and a trailing nil)",
                });
            }
            Ok(Command::TryEach {
                branches,
                empty_fallback,
            })
        }
        key::RUN_SEQUENCE => Ok(Command::RunSequence(decode_sequence(
            r.bytes()?,
            "run-sequence argument",
            rules,
            depth + 1,
        )?)),
        k if k < 0 => {
            if rules.shared {
                return shared_forbidden(k);
            }
            Err(Error::Unsupported(alloc::format!(
                "custom command {k} (no custom commands are implemented)"
            )))
        }
        other => Err(Error::UnknownCommand(other)),
    }
}

fn parameters<'a>(r: &mut Reader<'a>, rules: SequenceRules) -> Result<Vec<Parameter<'a>>> {
    let params = decode_parameters(r)?;
    if rules.shared && params.iter().any(|p| p.key() < 0) {
        return Err(Error::ForbiddenInSharedSequence("custom parameters"));
    }
    Ok(params)
}

fn component_index(r: &mut Reader<'_>, components: usize) -> Result<usize> {
    let i = r.u64()?;
    usize::try_from(i)
        .ok()
        .filter(|&i| i < components)
        .ok_or(Error::ComponentIndexOutOfRange {
            index: i,
            count: components,
        })
}

fn component_key(
    r: &mut Reader<'_>,
    entries: &mut crate::cbor::MapEntries,
    components: usize,
) -> Result<usize> {
    match r.map_key(entries)? {
        Key::Int(i) if i >= 0 => usize::try_from(i).ok().filter(|&i| i < components).ok_or(
            Error::ComponentIndexOutOfRange {
                index: i as u64,
                count: components,
            },
        ),
        _ => Err(Error::InvalidValue {
            context: r.context(),
            element: "component index",
            reason: "must be an unsigned integer",
        }),
    }
}

fn decode_index(r: &mut Reader<'_>, components: usize) -> Result<IndexSelection> {
    match r.datatype()? {
        Type::Bool => {
            if r.bool()? {
                Ok(IndexSelection::All)
            } else {
                Err(Error::InvalidValue {
                    context: r.context(),
                    element: "set-component-index",
                    reason: "false is not a component index",
                })
            }
        }
        Type::Array => {
            let n = r.array()?;
            if n == 0 {
                return Err(Error::InvalidValue {
                    context: r.context(),
                    element: "set-component-index",
                    reason: "an index array must not be empty",
                });
            }
            let mut list = Vec::new();
            for _ in 0..n {
                list.push(component_index(r, components)?);
            }
            Ok(IndexSelection::List(list))
        }
        _ => Ok(IndexSelection::One(component_index(r, components)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: SequenceRules = SequenceRules {
        components: 2,
        shared: false,
        dependencies: false,
    };
    const SHARED: SequenceRules = SequenceRules {
        components: 2,
        shared: true,
        dependencies: false,
    };

    #[test]
    fn decodes_index_forms() {
        // [12, 1, 12, true, 12, [0, 1]]
        let seq = CommandSequence::decode(
            &[0x86, 0x0c, 0x01, 0x0c, 0xf5, 0x0c, 0x82, 0x00, 0x01],
            "t",
            RULES,
        )
        .unwrap();
        assert_eq!(
            seq.commands,
            alloc::vec![
                Command::SetComponentIndex(IndexSelection::One(1)),
                Command::SetComponentIndex(IndexSelection::All),
                Command::SetComponentIndex(IndexSelection::List(alloc::vec![0, 1])),
            ]
        );
    }

    #[test]
    fn rejects_out_of_range_index() {
        let e = CommandSequence::decode(&[0x82, 0x0c, 0x02], "t", RULES).unwrap_err();
        assert_eq!(e, Error::ComponentIndexOutOfRange { index: 2, count: 2 });
    }

    #[test]
    fn rejects_unknown_and_custom_commands() {
        assert_eq!(
            CommandSequence::decode(&[0x82, 0x18, 0x63, 0x0f], "t", RULES).unwrap_err(),
            Error::UnknownCommand(99)
        );
        let e = CommandSequence::decode(&[0x82, 0x39, 0x01, 0x00, 0xf6], "t", RULES).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
        let e = CommandSequence::decode(&[0x82, 0x39, 0x01, 0x00, 0xf6], "t", SHARED).unwrap_err();
        assert!(matches!(e, Error::ForbiddenInSharedSequence(_)), "{e:?}");
    }

    #[test]
    fn shared_sequence_rejects_directives() {
        // [21, 15] fetch
        let e = CommandSequence::decode(&[0x82, 0x15, 0x0f], "t", SHARED).unwrap_err();
        assert_eq!(e, Error::ForbiddenInSharedSequence("directive-fetch"));
    }

    #[test]
    fn nesting_is_bounded() {
        // [32, << [32, << ... [] >>] >>], nested beyond the limit.
        let mut inner = alloc::vec![0x80u8];
        for _ in 0..=MAX_NESTING + 1 {
            let mut outer = alloc::vec![0x82, 0x18, 0x20, 0x59];
            outer.extend_from_slice(&(inner.len() as u16).to_be_bytes());
            outer.extend_from_slice(&inner);
            inner = outer;
        }
        let e = CommandSequence::decode(&inner, "t", RULES).unwrap_err();
        assert!(matches!(e, Error::LimitExceeded { .. }), "{e:?}");
    }
}
