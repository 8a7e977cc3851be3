//! The fleet server (`[ddi]`): an Eclipse hawkBit Direct Device Integration endpoint.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use url::Url;

/// Where and as whom the daemon polls a hawkBit DDI server (`[ddi]`); with it the daemon
/// ignores `channel-url` and installs what the server assigns (see `crate::agent::ddi`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DdiConfig {
    /// The server's base URL (`http://` or `https://`), without the tenant:
    /// `https://hawkbit.example.com`.
    #[serde(deserialize_with = "server_url")]
    pub server_url: Url,
    /// The tenant. Default `DEFAULT` (hawkBit's single-tenant name).
    #[serde(default = "default_tenant", deserialize_with = "path_segment")]
    pub tenant: String,
    /// The controller id of this device, as registered on the server.
    #[serde(deserialize_with = "path_segment")]
    pub controller_id: String,
    /// hawkBit target security token of this device (`Authorization: TargetToken ...`).
    /// At most one of `target-token` and `gateway-token`; with neither, requests carry no
    /// credentials (a server with anonymous access, or one behind a client-certificate proxy).
    #[serde(default)]
    pub target_token: Option<String>,
    /// The tenant's gateway token (`Authorization: GatewayToken ...`).
    #[serde(default)]
    pub gateway_token: Option<String>,
    /// The board name sent as the `hw_boardname` attribute. Default `unknown`.
    #[serde(default = "default_unknown")]
    pub board_name: String,
    /// The board revision sent as the `hw_revision` attribute. Default `unknown`.
    #[serde(default = "default_unknown")]
    pub board_revision: String,
}

impl DdiConfig {
    /// The `Authorization` header value, when a token is configured; an error when both are.
    pub fn authorization(&self) -> Result<Option<String>, String> {
        match (&self.target_token, &self.gateway_token) {
            (Some(_), Some(_)) => {
                Err("ddi: set target-token or gateway-token, not both".to_string())
            }
            (Some(token), None) => Ok(Some(format!("TargetToken {token}"))),
            (None, Some(token)) => Ok(Some(format!("GatewayToken {token}"))),
            (None, None) => Ok(None),
        }
    }
}

fn server_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
    let text = String::deserialize(deserializer)?;
    let url =
        Url::parse(&text).map_err(|e| de::Error::custom(format!("invalid URL {text:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(de::Error::custom(format!(
            "URL {text:?}: expected http:// or https:// with a host"
        )));
    }
    Ok(url)
}

/// A tenant or controller id: one non-empty URL path segment of unreserved characters.
fn path_segment<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    let ok = !text.is_empty()
        && text.len() <= 256
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if ok {
        Ok(text)
    } else {
        Err(de::Error::custom(format!(
            "{text:?} must be 1 to 256 characters of A-Z a-z 0-9 - _ . ~"
        )))
    }
}

fn default_tenant() -> String {
    String::from("DEFAULT")
}

fn default_unknown() -> String {
    String::from("unknown")
}
