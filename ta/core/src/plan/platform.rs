//! The [`Planner`] as the processor's platform: conditions on content answered from what is
//! known, computed or decided; fetch, write and copy recorded as planned content; everything
//! else about the device decided for real.

use alloc::format;
use alloc::string::String;

use suit_shared::abi::PayloadSource;
use suit_shared::digest::{DigestValue, SuitDigest};
use suit_shared::params::ComponentParams;
use suit_shared::processor::{ComponentRef, DeviceIdentity, FetchSource, ImageCheck, Platform};
use suit_shared::Error;

use super::{Content, Knowledge, Planner, Step};

fn digest_value(digest: &SuitDigest<'_>) -> suit_shared::Result<DigestValue> {
    DigestValue::new(digest.alg, digest.bytes).ok_or(Error::InvalidValue {
        context: "image-digest",
        element: "digest",
        reason: "length does not match its algorithm",
    })
}

impl Platform for Planner<'_> {
    fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    fn component_slot(&self, _component: ComponentRef<'_>) -> Option<u64> {
        Some(self.slot)
    }

    fn check_image(
        &mut self,
        component: ComponentRef<'_>,
        digest: &SuitDigest<'_>,
        size: Option<u64>,
    ) -> suit_shared::Result<ImageCheck> {
        let c = component.index;
        let wanted = digest_value(digest)?;
        if self.matches(c, &wanted, size, true)? {
            return Ok(ImageCheck::Match);
        }
        let payload = self.content_of(c, "an image condition")?.payload;
        Ok(match (self.payloads[payload].size, size) {
            (Some(actual), Some(s)) if actual != s => ImageCheck::SizeMismatch { actual },
            _ => ImageCheck::DigestMismatch,
        })
    }

    fn check_image_differs(
        &mut self,
        component: ComponentRef<'_>,
        digest: &SuitDigest<'_>,
    ) -> suit_shared::Result<bool> {
        let wanted = digest_value(digest)?;
        Ok(!self.matches(component.index, &wanted, None, false)?)
    }

    fn check_content(
        &mut self,
        component: ComponentRef<'_>,
        _expected: &[u8],
    ) -> suit_shared::Result<bool> {
        Err(Error::Unsupported(format!(
            "check-content on component {} (use image-match)",
            component.index
        )))
    }

    fn fetch(
        &mut self,
        component: ComponentRef<'_>,
        source: FetchSource<'_>,
        params: &ComponentParams<'_>,
    ) -> suit_shared::Result<()> {
        let source = match source {
            FetchSource::Uri(uri) => PayloadSource::Uri(String::from(uri)),
            FetchSource::Integrated { uri, .. } => PayloadSource::Integrated(String::from(uri)),
        };
        self.trace
            .push(Step::Fetch(component.index, source.clone()));
        let payload = self.new_payload(Knowledge::default());
        self.set(
            component.index,
            Content {
                source,
                encryption_info: params.encryption_info.map(<[u8]>::to_vec),
                verity_root: params.verity_root.copied(),
                payload,
                from: None,
            },
        )
    }

    fn write(
        &mut self,
        component: ComponentRef<'_>,
        params: &ComponentParams<'_>,
    ) -> suit_shared::Result<()> {
        let content = params.content.ok_or(Error::ParameterUnset {
            command: "directive-write",
            parameter: "content",
            component: component.index,
        })?;
        self.trace.push(Step::Write(component.index));
        // Encrypted content: the planner knows the ciphertext, not the plaintext.
        let bytes = params.encryption_info.is_none().then(|| content.to_vec());
        let payload = self.new_payload(Knowledge {
            bytes,
            ..Knowledge::default()
        });
        self.set(
            component.index,
            Content {
                source: PayloadSource::Content(content.to_vec()),
                encryption_info: params.encryption_info.map(<[u8]>::to_vec),
                verity_root: None,
                payload,
                from: None,
            },
        )
    }

    fn copy(
        &mut self,
        component: ComponentRef<'_>,
        source: ComponentRef<'_>,
        params: &ComponentParams<'_>,
    ) -> suit_shared::Result<()> {
        let from = self.content_of(source.index, "a copy")?.clone();
        if from.encryption_info.is_some() && params.encryption_info.is_some() {
            return Err(Error::Unsupported(String::from(
                "decrypting a payload twice (encryption-info on both fetch and copy)",
            )));
        }
        self.trace.push(Step::Copy(component.index, source.index));
        self.copied_from[source.index] = true;
        // A decrypting copy makes a new payload (the plaintext); a plain copy the same one.
        let payload = match params.encryption_info {
            Some(_) => self.new_payload(Knowledge::default()),
            None => from.payload,
        };
        self.set(
            component.index,
            Content {
                source: from.source,
                encryption_info: params
                    .encryption_info
                    .map(<[u8]>::to_vec)
                    .or(from.encryption_info),
                verity_root: params.verity_root.copied().or(from.verity_root),
                payload,
                from: Some((source.index, from.payload)),
            },
        )
    }

    fn now(&self) -> Option<u64> {
        self.now
    }

    fn battery_mwh(&self) -> Option<u64> {
        self.facts.battery_mwh
    }

    /// The agent asks its authorization hook once per update, so the answer is the same for
    /// every component and priority.
    fn update_authorized(&mut self, _component: ComponentRef<'_>, _priority: Option<i64>) -> bool {
        self.facts.authorized
    }
}
