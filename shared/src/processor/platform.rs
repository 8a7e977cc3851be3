//! What the processor asks of a device: its identity, component I/O and facts ([`Platform`]),
//! and the manifest sections it runs ([`Section`]).

use alloc::vec::Vec;

use crate::component::ComponentId;
use crate::digest::SuitDigest;
use crate::error::{Error, Result, Uuid};
use crate::params::ComponentParams;

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
pub struct ComponentRef<'m> {
    /// Index in the manifest's component list.
    pub index: usize,
    /// Its identifier.
    pub id: &'m ComponentId,
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
    fn component_slot(&self, component: ComponentRef<'_>) -> Option<u64>;

    /// Compares the component's current content with `digest` and, when given, `size`.
    fn check_image(
        &mut self,
        component: ComponentRef<'_>,
        digest: &SuitDigest<'_>,
        size: Option<u64>,
    ) -> Result<ImageCheck>;

    /// Whether the component's content differs from `digest` (image-not-match). By default
    /// the negation of [`Platform::check_image`] without a size.
    fn check_image_differs(
        &mut self,
        component: ComponentRef<'_>,
        digest: &SuitDigest<'_>,
    ) -> Result<bool> {
        Ok(self.check_image(component, digest, None)? != ImageCheck::Match)
    }

    /// Constant-time comparison of the component's content with `expected` (check-content).
    fn check_content(&mut self, component: ComponentRef<'_>, expected: &[u8]) -> Result<bool>;

    /// Retrieves bytes into the component (fetch). `params` holds size, digest, fetch-arguments.
    fn fetch(
        &mut self,
        component: ComponentRef<'_>,
        source: FetchSource<'_>,
        params: &ComponentParams<'_>,
    ) -> Result<()>;

    /// Writes `params.content` into the component, decrypting with `params.encryption_info`
    /// when set (write).
    fn write(&mut self, component: ComponentRef<'_>, params: &ComponentParams<'_>) -> Result<()>;

    /// Copies `source` into the component, decrypting with `params.encryption_info` when set.
    fn copy(
        &mut self,
        component: ComponentRef<'_>,
        source: ComponentRef<'_>,
        params: &ComponentParams<'_>,
    ) -> Result<()>;

    /// Exchanges the contents of two components.
    fn swap(
        &mut self,
        component: ComponentRef<'_>,
        other: ComponentRef<'_>,
        _params: &ComponentParams<'_>,
    ) -> Result<()> {
        let _ = (component, other);
        Err(Error::Unsupported("directive-swap on this device".into()))
    }

    /// Transfers control to the component.
    fn invoke(&mut self, component: ComponentRef<'_>, _params: &ComponentParams<'_>) -> Result<()> {
        let _ = component;
        Err(Error::Unsupported("directive-invoke on this device".into()))
    }

    /// Removes the component (trust-domains unlink).
    fn unlink(&mut self, component: ComponentRef<'_>) -> Result<()> {
        let _ = component;
        Err(Error::Unsupported("directive-unlink on this device".into()))
    }

    /// Waits for the event in `params.wait_info`.
    fn wait(&mut self, component: ComponentRef<'_>, _params: &ComponentParams<'_>) -> Result<()> {
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
    fn update_authorized(&mut self, component: ComponentRef<'_>, priority: Option<i64>) -> bool {
        let _ = (component, priority);
        true
    }

    /// The installed version of the component, if known (version condition).
    fn component_version(&self, component: ComponentRef<'_>) -> Option<Vec<i64>> {
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

    /// The section's key in SUIT_Manifest (what a SUIT_Record's manifest-section names).
    pub fn key(self) -> i64 {
        match self {
            Section::PayloadFetch => 16,
            Section::CandidateVerification => 18,
            Section::Install => 20,
            Section::Validate => 7,
            Section::Load => 8,
            Section::Invoke => 9,
        }
    }
}

/// A command sequence of the manifest: the shared sequence or one section's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// suit-shared-sequence (in suit-common), run before every section.
    Shared,
    /// A section's own sequence.
    Section(Section),
}

impl Sequence {
    /// suit-common's key in SUIT_Manifest, which holds the shared sequence.
    pub const COMMON_KEY: i64 = 3;

    /// The manifest key a SUIT_Record names for this sequence: the section's key, or
    /// suit-common's for the shared sequence.
    pub fn key(self) -> i64 {
        match self {
            Sequence::Shared => Self::COMMON_KEY,
            Sequence::Section(section) => section.key(),
        }
    }
}

/// Where processing was when it stopped: the fields draft-ietf-suit-report's SUIT_Record
/// gives a failure (manifest-section, component-index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The sequence that was running.
    pub sequence: Sequence,
    /// The component the last command ran for; `None` when no command had run for one yet.
    pub component: Option<usize>,
}
