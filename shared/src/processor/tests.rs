//! Tests of the processor against an in-memory platform.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::auth::Authenticated;
use crate::command::{
    Command, CommandSequence, Condition, Directive, IndexSelection, ReportingPolicy,
};
use crate::component::ComponentId;
use crate::digest::{DigestAlg, SuitDigest};
use crate::envelope::{Envelope, Framing, Wrapped};
use crate::error::{Error, Result, Uuid};
use crate::manifest::{Authentic, Manifest, Severable};
use crate::params::{ComponentParams, Parameter, VendorId};

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
    fn component_slot(&self, _: ComponentRef<'_>) -> Option<u64> {
        Some(self.slot)
    }
    fn check_image(
        &mut self,
        c: ComponentRef<'_>,
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
    fn check_content(&mut self, c: ComponentRef<'_>, expected: &[u8]) -> Result<bool> {
        Ok(self.contents[c.index] == expected)
    }
    fn fetch(
        &mut self,
        c: ComponentRef<'_>,
        _: FetchSource<'_>,
        _: &ComponentParams<'_>,
    ) -> Result<()> {
        self.fetched.push(c.index);
        Ok(())
    }
    fn write(&mut self, c: ComponentRef<'_>, p: &ComponentParams<'_>) -> Result<()> {
        self.contents[c.index] = p.content.unwrap_or_default().to_vec();
        Ok(())
    }
    fn copy(
        &mut self,
        c: ComponentRef<'_>,
        s: ComponentRef<'_>,
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
    run_located(components, shared, install, dev).0
}

/// [`run`], also returning where the processor stopped.
fn run_located(
    components: usize,
    shared: Vec<Command<'static>>,
    install: Vec<Command<'static>>,
    dev: &mut Memory,
) -> (Result<()>, Option<Location>) {
    let manifest = Manifest {
        sequence_number: 1,
        components: (0..components).map(|_| ComponentId::new(PARTS)).collect(),
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
    let mut processor = Processor::new(&authentic, dev);
    let result = processor.run(&[Section::Install]);
    (result, processor.location())
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

#[test]
fn a_failure_names_its_sequence_and_component() {
    let i = |n| Command::SetComponentIndex(IndexSelection::One(n));
    // Component 1's install sequence fails a condition, after component 0 passed it.
    let install = [vec![i(0)], vendor(1), vec![i(1)], vendor(9)].concat();
    let (result, at) = run_located(2, vec![i(0)], install, &mut device(2));
    assert!(
        matches!(result, Err(Error::VendorMismatch { component: 1, .. })),
        "{result:?}"
    );
    assert_eq!(
        at,
        Some(Location {
            sequence: Sequence::Section(Section::Install),
            component: Some(1),
        })
    );
    assert_eq!(at.map(|l| l.sequence.key()), Some(20));
    // A failure in the shared sequence names suit-common, whatever section it preceded.
    let shared = [vec![i(1)], vendor(9)].concat();
    let (result, at) = run_located(2, shared, vec![i(0)], &mut device(2));
    assert!(result.is_err());
    assert_eq!(
        at,
        Some(Location {
            sequence: Sequence::Shared,
            component: Some(1),
        })
    );
    assert_eq!(at.map(|l| l.sequence.key()), Some(Sequence::COMMON_KEY));
    // Inside try-each: the component of the branch that failed last.
    let branches = vec![[vec![i(1)], vendor(8)].concat(), vendor(9)];
    let (result, at) = run_located(
        2,
        vec![i(0)],
        vec![i(0), try_each(branches, false)],
        &mut device(2),
    );
    assert!(result.is_err());
    assert_eq!(at.and_then(|l| l.component), Some(0));
}
