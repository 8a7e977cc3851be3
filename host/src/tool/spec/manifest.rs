//! The manifest of a prepared spec, following the draft's templates (§7): compatibility
//! check, download + install, secure-boot validate, and try-each over component-slot for A/B.

use std::path::{Path, PathBuf};

use suit_shared::command::{
    Command, CommandSequence, Condition, Directive, IndexSelection, ReportingPolicy,
};
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::manifest::{LanguageText, Manifest, Severable, TextMap};
use suit_shared::params::{Parameter, VendorId};

use super::{Prepared, SeverableName, Variant};

impl Prepared {
    /// Ciphertext files written for encrypted components, with their sizes.
    pub fn ciphertexts(&self) -> impl Iterator<Item = (&Path, u64)> {
        self.components
            .iter()
            .filter_map(|c| c.encrypted().map(|(_, e)| (e.path.as_path(), e.size)))
    }

    /// Every variant's plaintext image file with the digest the manifest declares for it
    /// (the dm-verity salt of its slot image).
    pub fn plaintext_images(&self) -> impl Iterator<Item = (&Path, &DigestValue)> {
        self.components
            .iter()
            .flat_map(|c| c.variants.iter().map(|v| (v.image.as_path(), &v.digest)))
    }

    /// The manifest's digest algorithm.
    pub fn digest_alg(&self) -> DigestAlg {
        self.digest_alg
    }

    /// Integrated payloads: envelope key and file.
    pub fn integrated(&self) -> impl Iterator<Item = &(String, PathBuf)> {
        self.components
            .iter()
            .flat_map(|c| c.variants.iter().filter_map(|v| v.integrated.as_ref()))
    }

    /// The manifest, following the draft's templates.
    pub fn manifest(&self) -> Manifest<'_> {
        // Cache components for ciphertexts follow the spec's components.
        let caches: Vec<usize> = self
            .components
            .iter()
            .enumerate()
            .filter(|(_, c)| c.encrypted().is_some())
            .map(|(i, _)| i)
            .collect();
        let many = self.components.len() + caches.len() > 1;
        let select = |seq: &mut Vec<Command<'_>>, index: usize| {
            if many {
                seq.push(Command::SetComponentIndex(IndexSelection::One(index)));
            }
        };
        let mut shared = Vec::new();
        let mut install = Vec::new();
        let mut validate = Vec::new();
        let mut next_cache = self.components.len();
        // The device's state before anything is fetched (update-management conditions).
        if self.minimum_battery.is_some() || self.update_authorized {
            select(&mut install, 0);
        }
        if let Some(mwh) = self.minimum_battery {
            install.push(Command::OverrideParameters(vec![
                Parameter::MinimumBattery(mwh),
            ]));
            install.push(Command::Condition(Condition::MinimumBattery, policy(15)));
        }
        if self.update_authorized {
            install.push(Command::Condition(Condition::UpdateAuthorized, policy(15)));
        }
        for (i, c) in self.components.iter().enumerate() {
            // Vendor and class are per-component parameters: each installed component checks
            // them (a device installs nothing whose applicability it has not checked).
            select(&mut shared, i);
            shared.push(Command::OverrideParameters(vec![
                Parameter::VendorId(VendorId::Uuid(self.vendor)),
                Parameter::ClassId(self.class),
            ]));
            shared.push(Command::Condition(Condition::VendorId, policy(15)));
            shared.push(Command::Condition(Condition::ClassId, policy(15)));
            // Expected image per slot in the shared sequence, URI per slot in install.
            shared.extend(per_slot(&c.variants, expected_image));
            match c.encrypted() {
                None => {
                    select(&mut install, i);
                    install.extend(per_slot(&c.variants, source_uri));
                    install.push(Command::Directive(Directive::Fetch, policy(2)));
                    install.push(Command::Condition(Condition::ImageMatch, policy(15)));
                }
                Some((variant, payload)) => {
                    // The draft's two-component form: fetch the ciphertext into the cache
                    // component and check its digest before decrypting, then copy with
                    // encryption-info into the component and check the plaintext.
                    let cache = next_cache;
                    next_cache += 1;
                    select(&mut shared, cache);
                    shared.push(Command::OverrideParameters(vec![
                        Parameter::ImageDigest(payload.digest.as_suit_digest()),
                        Parameter::ImageSize(payload.size),
                    ]));
                    select(&mut install, cache);
                    install.push(Command::OverrideParameters(source_uri(variant)));
                    install.push(Command::Directive(Directive::Fetch, policy(2)));
                    install.push(Command::Condition(Condition::ImageMatch, policy(15)));
                    select(&mut install, i);
                    let mut params = vec![
                        Parameter::EncryptionInfo(&payload.info),
                        Parameter::SourceComponent(cache as u64),
                    ];
                    params.extend(variant.verity_root.as_ref().map(Parameter::VerityRoot));
                    install.push(Command::OverrideParameters(params));
                    install.push(Command::Directive(Directive::Copy, policy(2)));
                    install.push(Command::Condition(Condition::ImageMatch, policy(15)));
                }
            }
            select(&mut validate, i);
            validate.push(Command::Condition(Condition::ImageMatch, policy(15)));
        }
        let cache_ids = caches.iter().map(|&i| self.components[i].cache_id.clone());
        let text = self.text_map();
        let sever = |name| self.sever.contains(&name);
        Manifest {
            sequence_number: self.sequence_number,
            components: self
                .components
                .iter()
                .map(|c| c.id.clone())
                .chain(cache_ids)
                .collect(),
            shared_sequence: Some(CommandSequence { commands: shared }),
            reference_uri: self.reference_uri.as_deref(),
            manifest_component_id: None,
            set_version: None,
            validate: Some(CommandSequence { commands: validate }),
            load: None,
            invoke: None,
            uninstall: None,
            payload_fetch: Severable::Absent,
            install: Severable::Present {
                value: CommandSequence { commands: install },
                severed: sever(SeverableName::Install) || sever(SeverableName::PayloadFetch),
            },
            candidate_verification: Severable::Absent,
            text: match text {
                Some(value) => Severable::Present {
                    value,
                    severed: sever(SeverableName::Text),
                },
                None => Severable::Absent,
            },
            coswid: Severable::Absent,
        }
    }

    fn text_map(&self) -> Option<TextMap<'_>> {
        let has_component_text = self.components.iter().any(|c| !c.text.is_empty());
        if self.text.is_empty() && !has_component_text {
            return None;
        }
        let mut lang = LanguageText::default();
        for (k, v) in &self.text {
            lang.manifest.insert(*k, v.as_str());
        }
        for c in self.components.iter().filter(|c| !c.text.is_empty()) {
            let id = c.id.clone();
            lang.components
                .push((id, c.text.iter().map(|(k, v)| (*k, v.as_str())).collect()));
        }
        Some(TextMap {
            languages: vec![("en", lang)],
        })
    }
}

fn expected_image(v: &Variant) -> Vec<Parameter<'_>> {
    vec![
        Parameter::ImageDigest(v.digest.as_suit_digest()),
        Parameter::ImageSize(v.size),
    ]
}

/// The URI, and for a plain streaming component the dm-verity root (never in the shared
/// sequence: it is a private-use parameter).
fn source_uri(v: &Variant) -> Vec<Parameter<'_>> {
    let mut params = vec![Parameter::Uri(v.uri.as_str())];
    if v.encrypted.is_none() {
        params.extend(v.verity_root.as_ref().map(Parameter::VerityRoot));
    }
    params
}

/// Parameters for a component's variants: set directly for a single variant, or chosen by a
/// try-each over component-slot for A/B (draft §7.7 / Example 3).
fn per_slot<'a>(
    variants: &'a [Variant],
    params: fn(&'a Variant) -> Vec<Parameter<'a>>,
) -> Vec<Command<'a>> {
    let branch = |v: &'a Variant| {
        let mut commands = Vec::new();
        if let Some(slot) = v.slot {
            commands.push(Command::OverrideParameters(vec![Parameter::ComponentSlot(
                slot,
            )]));
            commands.push(Command::Condition(Condition::ComponentSlot, policy(5)));
        }
        commands.push(Command::OverrideParameters(params(v)));
        commands
    };
    match variants {
        [single] => branch(single),
        many => vec![Command::TryEach {
            branches: many
                .iter()
                .map(|v| CommandSequence {
                    commands: branch(v),
                })
                .collect(),
            empty_fallback: false,
        }],
    }
}

fn policy(bits: u64) -> ReportingPolicy {
    ReportingPolicy(bits)
}
