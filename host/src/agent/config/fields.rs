//! Checked field types of the config file: durations, absolute paths, URLs, commands.

use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use url::Url;

pub(super) fn optional_command<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    command(deserializer).map(Some)
}

/// A positive duration written as text: `500ms`, `30s`, `5m`, `1h 30m`.
pub(super) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    let value = humantime::parse_duration(&text)
        .map_err(|e| de::Error::custom(format!("invalid duration {text:?}: {e}")))?;
    if value.is_zero() {
        return Err(de::Error::custom(format!(
            "duration {text:?} must be greater than zero"
        )));
    }
    Ok(value)
}

pub(super) fn absolute_path<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<PathBuf, D::Error> {
    let path = PathBuf::deserialize(deserializer)?;
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(de::Error::custom(format!(
            "path {} must be absolute",
            path.display()
        )))
    }
}

pub(super) fn absolute_paths<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<PathBuf>, D::Error> {
    let paths = Vec::<PathBuf>::deserialize(deserializer)?;
    match paths.iter().find(|p| !p.is_absolute()) {
        Some(relative) => Err(de::Error::custom(format!(
            "path {} must be absolute",
            relative.display()
        ))),
        None => Ok(paths),
    }
}

fn url_with_scheme<'de, D: Deserializer<'de>>(
    deserializer: D,
    schemes: &[&str],
) -> Result<Option<Url>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let url =
        Url::parse(&text).map_err(|e| de::Error::custom(format!("invalid URL {text:?}: {e}")))?;
    if schemes.contains(&url.scheme()) {
        Ok(Some(url))
    } else {
        Err(de::Error::custom(format!(
            "URL {text:?} has scheme {:?}; expected one of {}",
            url.scheme(),
            schemes.join(", ")
        )))
    }
}

pub(super) fn channel_url<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Url>, D::Error> {
    url_with_scheme(deserializer, &["http", "https", "file"])
}

pub(super) fn report_url<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Url>, D::Error> {
    url_with_scheme(deserializer, &["http", "https"])
}

pub(super) fn optional_absolute_path<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<PathBuf>, D::Error> {
    absolute_path(deserializer).map(Some)
}

pub(super) fn command<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let argv = Vec::<String>::deserialize(deserializer)?;
    match argv.first() {
        Some(program) if !program.is_empty() => Ok(argv),
        _ => Err(de::Error::custom(
            "the command needs a program: [\"/path/to/program\", \"arg\", ...]",
        )),
    }
}
