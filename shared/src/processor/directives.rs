//! Directives (§8.4.10.4–9 and extensions): fetch, write, copy, swap, invoke, wait, unlink.

use super::{directive_name, FetchSource, Platform, Processor};
use crate::command::Directive;
use crate::encryption::EncryptionInfo;
use crate::error::{Error, Result};

impl<'p, 'a, P: Platform> Processor<'p, 'a, P> {
    pub(super) fn directive(&mut self, directive: Directive, c: usize) -> Result<()> {
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
