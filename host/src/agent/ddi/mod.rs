//! A client of Eclipse hawkBit's Direct Device Integration (DDI) API, the subset a device
//! needs: poll, configData, deploymentBase, artifact download, feedback, cancelAction.
//!
//! It runs on the agent's HTTP stack ([`Fetcher::call`], blocking ureq, no async runtime).
//! Everything the server sends is parsed into the types below before it is used; a link is
//! followed only on the server's own origin, and the token is sent only there, so a reply
//! cannot make the device hand its credentials to another host. An `https://` server's links
//! must stay `https://`. The flow that drives it (what to install, what to report) is the
//! daemon's (`update::fleet`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use super::config::DdiConfig;
use super::fetch::{ApiMethod, FetchError, Fetcher, ServerArtifact};

/// Largest JSON reply accepted from the server.
const MAX_REPLY: u64 = 1024 * 1024;

/// Why a DDI exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum DdiError {
    /// The request failed on the way (connection, timeout, TLS, size).
    #[error("fleet server: {0}")]
    Http(#[from] FetchError),
    /// The server answered with an error status.
    #[error("fleet server: {url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The reply is not the JSON the DDI API defines.
    #[error("fleet server: {url}: unexpected reply: {reason}")]
    Reply {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A link in the reply leaves the server (another origin, or https → http).
    #[error("fleet server: refusing the link {link}: {reason}")]
    Link {
        /// The link.
        link: String,
        /// Why.
        reason: &'static str,
    },
    /// The configuration cannot make a DDI client.
    #[error("{0}")]
    Config(String),
    /// A download could not be stored.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl DdiError {
    /// Whether the same request may succeed later (transport trouble, 408/429/5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            DdiError::Http(e) => e.is_retryable(),
            DdiError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }
}

/// The controller's base resource: `GET {server}/{tenant}/controller/v1/{controllerId}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ControllerBase {
    /// The server's polling configuration.
    #[serde(default)]
    pub config: Option<ControllerConfig>,
    /// What the server asks of the device.
    #[serde(default, rename = "_links")]
    pub links: BaseLinks,
}

/// `config` of the base resource.
#[derive(Debug, Clone, Deserialize)]
pub struct ControllerConfig {
    /// `polling`.
    #[serde(default)]
    pub polling: Option<Polling>,
}

/// `config.polling`.
#[derive(Debug, Clone, Deserialize)]
pub struct Polling {
    /// Time until the next poll, `HH:MM:SS`.
    #[serde(default)]
    pub sleep: Option<String>,
}

/// `_links` of the base resource: each present link is a request of the server.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BaseLinks {
    /// A deployment to carry out.
    #[serde(default, rename = "deploymentBase")]
    pub deployment_base: Option<Link>,
    /// The server wants the device's attributes.
    #[serde(default, rename = "configData")]
    pub config_data: Option<Link>,
    /// An action to cancel.
    #[serde(default, rename = "cancelAction")]
    pub cancel_action: Option<Link>,
}

/// A HAL link.
#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    /// The URL.
    pub href: String,
}

impl ControllerBase {
    /// The server's `config.polling.sleep` (`HH:MM:SS`), when present and well formed, at
    /// least one second (a server asking for 0 must not make the device spin).
    pub fn sleep(&self) -> Option<Duration> {
        let text = self.config.as_ref()?.polling.as_ref()?.sleep.as_deref()?;
        let mut parts = text.split(':').map(|p| p.parse::<u64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() || m >= 60 || s >= 60 {
            return None;
        }
        Some(Duration::from_secs((h * 3600 + m * 60 + s).max(1)))
    }
}

/// `GET deploymentBase/{actionId}`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentBase {
    /// The action id.
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    /// What to deploy.
    pub deployment: Deployment,
}

/// `deployment` of a deploymentBase.
#[derive(Debug, Clone, Deserialize)]
pub struct Deployment {
    /// The software modules.
    #[serde(default)]
    pub chunks: Vec<Chunk>,
}

/// A software module of a deployment.
#[derive(Debug, Clone, Deserialize)]
pub struct Chunk {
    /// Its version, as the server names it.
    #[serde(default)]
    pub version: Option<String>,
    /// Its files.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

/// A file of a software module.
#[derive(Debug, Clone, Deserialize)]
pub struct Artifact {
    /// The file name.
    pub filename: String,
    /// Its size, when announced.
    #[serde(default)]
    pub size: Option<u64>,
    /// Its digests by algorithm name (`sha1`, `md5`, `sha256`), as announced.
    #[serde(default)]
    pub hashes: BTreeMap<String, String>,
    /// Where to download it.
    #[serde(rename = "_links")]
    pub links: ArtifactLinks,
}

/// `_links` of an artifact.
#[derive(Debug, Clone, Deserialize)]
pub struct ArtifactLinks {
    /// `download` (HTTPS on hawkBit).
    #[serde(default)]
    pub download: Option<Link>,
    /// `download-http`.
    #[serde(default, rename = "download-http")]
    pub download_http: Option<Link>,
}

impl DeploymentBase {
    /// The deployment's SUIT envelope: its only artifact named `*.suit`.
    pub fn envelope(&self) -> Result<&Artifact, String> {
        let mut suit = self
            .deployment
            .chunks
            .iter()
            .flat_map(|c| &c.artifacts)
            .filter(|a| a.filename.ends_with(".suit"));
        match (suit.next(), suit.next()) {
            (Some(artifact), None) => Ok(artifact),
            (None, _) => {
                Err("the deployment has no SUIT envelope (an artifact named *.suit)".into())
            }
            (Some(_), Some(_)) => Err("the deployment has more than one *.suit artifact".into()),
        }
    }

    /// What tells this deployment from another with the same action id (gooseBit's plugin
    /// deployments are all action -1): the id, the envelope's name, size and digests.
    pub fn fingerprint(&self) -> String {
        let mut text = self.id.clone();
        if let Ok(artifact) = self.envelope() {
            text.push_str(&format!(" {} {:?}", artifact.filename, artifact.size));
            for (alg, digest) in &artifact.hashes {
                text.push_str(&format!(" {alg}:{digest}"));
            }
        }
        text
    }
}

/// `GET cancelAction/{actionId}`.
#[derive(Debug, Clone, Deserialize)]
pub struct CancelActionBase {
    /// The cancel action's id.
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    /// What to cancel.
    #[serde(rename = "cancelAction")]
    pub cancel_action: CancelAction,
}

/// `cancelAction` of a cancelAction resource.
#[derive(Debug, Clone, Deserialize)]
pub struct CancelAction {
    /// The action to stop.
    #[serde(rename = "stopId", deserialize_with = "id_text")]
    pub stop_id: String,
}

/// hawkBit sends ids as strings, some servers as numbers: both are read as text.
fn id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(n) => n.to_string(),
    })
}

/// `status.execution` of a feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    /// Under way.
    Proceeding,
    /// Finished (see [`Finished`]).
    Closed,
    /// A cancellation refused.
    Rejected,
}

/// `status.result.finished` of a feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finished {
    /// Not finished.
    None,
    /// Succeeded.
    Success,
    /// Failed.
    Failure,
}

/// A feedback: `POST deploymentBase/{id}/feedback` or `cancelAction/{id}/feedback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    /// The status.
    pub status: FeedbackStatus,
}

/// `status` of a feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackStatus {
    /// Execution state.
    pub execution: Execution,
    /// Result.
    pub result: FeedbackResult,
    /// Human-readable lines (the TA's reason, the signed SUIT report).
    pub details: Vec<String>,
}

/// `status.result` of a feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackResult {
    /// Whether and how the action ended.
    pub finished: Finished,
    /// Steps done of all, while proceeding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<FeedbackProgress>,
}

/// `status.result.progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackProgress {
    /// Steps done.
    pub cnt: u32,
    /// Steps in all.
    pub of: u32,
}

impl Feedback {
    /// A feedback with `execution`, `finished`, optional progress and `details`.
    pub fn new(
        execution: Execution,
        finished: Finished,
        progress: Option<(u32, u32)>,
        details: Vec<String>,
    ) -> Feedback {
        Feedback {
            status: FeedbackStatus {
                execution,
                result: FeedbackResult {
                    finished,
                    progress: progress.map(|(cnt, of)| FeedbackProgress { cnt, of }),
                },
                details,
            },
        }
    }
}

/// `PUT configData`: the device's attributes, merged into those the server holds.
#[derive(Debug, Clone, Serialize)]
struct ConfigData<'a> {
    mode: &'static str,
    data: &'a BTreeMap<String, String>,
}

/// The DDI client of one controller.
#[derive(Debug, Clone)]
pub struct DdiClient {
    /// `{server}/{tenant}/controller/v1/{controllerId}`.
    base: Url,
    authorization: Option<String>,
}

impl DdiClient {
    /// The client of the controller `config` names.
    pub fn new(config: &DdiConfig) -> Result<DdiClient, DdiError> {
        let authorization = config.authorization().map_err(DdiError::Config)?;
        let mut base = config.server_url.clone();
        base.path_segments_mut()
            .map_err(|()| DdiError::Config("ddi.server-url cannot have a path".into()))?
            .pop_if_empty()
            .extend([
                config.tenant.as_str(),
                "controller",
                "v1",
                &config.controller_id,
            ]);
        Ok(DdiClient {
            base,
            authorization,
        })
    }

    /// The controller's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `base/{path...}`.
    fn below(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(path);
        }
        url
    }

    /// A link of a reply, accepted only on the server's origin (and never https → http).
    fn resolve(&self, href: &str) -> Result<Url, DdiError> {
        let refuse = |reason| DdiError::Link {
            link: href.to_string(),
            reason,
        };
        let url = self.base.join(href).map_err(|_| refuse("not a URL"))?;
        if url.origin() != self.base.origin() {
            return Err(refuse("it leaves the fleet server's origin"));
        }
        Ok(url)
    }

    fn request(
        &self,
        fetcher: &Fetcher,
        method: ApiMethod,
        url: &Url,
        body: Option<&[u8]>,
        limit: u64,
    ) -> Result<Vec<u8>, DdiError> {
        let mut headers = vec![("Accept", "application/hal+json, application/json")];
        if let Some(auth) = &self.authorization {
            headers.push(("Authorization", auth.as_str()));
        }
        let (status, reply) = fetcher.call(method, url, &headers, body, limit)?;
        if (200..300).contains(&status) {
            Ok(reply)
        } else {
            Err(DdiError::Status {
                url: url.to_string(),
                status,
            })
        }
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        fetcher: &Fetcher,
        url: &Url,
    ) -> Result<T, DdiError> {
        let reply = self.request(fetcher, ApiMethod::Get, url, None, MAX_REPLY)?;
        serde_json::from_slice(&reply).map_err(|e| DdiError::Reply {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }

    fn send_json<T: Serialize>(
        &self,
        fetcher: &Fetcher,
        method: ApiMethod,
        url: &Url,
        body: &T,
    ) -> Result<(), DdiError> {
        let json = serde_json::to_vec(body).map_err(|e| DdiError::Config(e.to_string()))?;
        self.request(fetcher, method, url, Some(&json), MAX_REPLY)
            .map(drop)
    }

    /// Polls the base resource.
    pub fn poll(&self, fetcher: &Fetcher) -> Result<ControllerBase, DdiError> {
        self.get_json(fetcher, &self.base)
    }

    /// Sends the device's attributes (`PUT configData`, mode merge).
    pub fn put_config_data(
        &self,
        fetcher: &Fetcher,
        data: &BTreeMap<String, String>,
    ) -> Result<(), DdiError> {
        let url = self.below(&["configData"]);
        let body = ConfigData {
            mode: "merge",
            data,
        };
        self.send_json(fetcher, ApiMethod::Put, &url, &body)
    }

    /// Reads the deployment a `deploymentBase` link names.
    pub fn deployment(&self, fetcher: &Fetcher, link: &Link) -> Result<DeploymentBase, DdiError> {
        let url = self.resolve(&link.href)?;
        self.get_json(fetcher, &url)
    }

    /// Reads the cancellation a `cancelAction` link names.
    pub fn cancel_action(
        &self,
        fetcher: &Fetcher,
        link: &Link,
    ) -> Result<CancelActionBase, DdiError> {
        let url = self.resolve(&link.href)?;
        self.get_json(fetcher, &url)
    }

    /// Sends the feedback of deployment action `action`.
    pub fn deployment_feedback(
        &self,
        fetcher: &Fetcher,
        action: &str,
        feedback: &Feedback,
    ) -> Result<(), DdiError> {
        let url = self.below(&["deploymentBase", action, "feedback"]);
        self.send_json(fetcher, ApiMethod::Post, &url, feedback)
    }

    /// Sends the feedback of cancel action `action`.
    pub fn cancel_feedback(
        &self,
        fetcher: &Fetcher,
        action: &str,
        feedback: &Feedback,
    ) -> Result<(), DdiError> {
        let url = self.below(&["cancelAction", action, "feedback"]);
        self.send_json(fetcher, ApiMethod::Post, &url, feedback)
    }

    /// The deployment's artifacts other than the envelope, for payloads whose manifest URI
    /// names them ([`Fetcher::set_artifacts`]); each link on the server's origin.
    pub fn payload_artifacts(
        &self,
        deployment: &DeploymentBase,
    ) -> Result<Vec<ServerArtifact>, DdiError> {
        deployment
            .deployment
            .chunks
            .iter()
            .flat_map(|c| &c.artifacts)
            .filter(|a| !a.filename.ends_with(".suit"))
            .map(|a| {
                Ok(ServerArtifact {
                    name: a.filename.clone(),
                    url: self.resolve(self.download_link(a)?)?,
                    authorization: self.authorization.clone(),
                })
            })
            .collect()
    }

    /// An artifact's `download` link, else its `download-http`.
    fn download_link<'a>(&self, artifact: &'a Artifact) -> Result<&'a str, DdiError> {
        let links = &artifact.links;
        match (&links.download, &links.download_http) {
            (Some(link), _) | (None, Some(link)) => Ok(&link.href),
            (None, None) => Err(DdiError::Reply {
                url: self.base.to_string(),
                reason: format!("artifact {} has no download link", artifact.filename),
            }),
        }
    }

    /// Downloads `artifact` into `dest`, refusing more than `limit` bytes (or than its
    /// announced size).
    pub fn download(
        &self,
        fetcher: &Fetcher,
        artifact: &Artifact,
        dest: &Path,
        limit: u64,
    ) -> Result<(), DdiError> {
        let url = self.resolve(self.download_link(artifact)?)?;
        let limit = artifact.size.map_or(limit, |size| size.min(limit));
        let bytes = self.request(fetcher, ApiMethod::Get, &url, None, limit)?;
        std::fs::write(dest, bytes).map_err(|source| DdiError::Io {
            path: dest.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(json: &str) -> ControllerBase {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn sleep_is_read_and_never_zero() {
        let sleep =
            |s: &str| base(&format!(r#"{{"config":{{"polling":{{"sleep":"{s}"}}}}}}"#)).sleep();
        assert_eq!(sleep("00:05:00"), Some(Duration::from_secs(300)));
        assert_eq!(sleep("01:00:01"), Some(Duration::from_secs(3601)));
        assert_eq!(sleep("00:00:00"), Some(Duration::from_secs(1)));
        assert_eq!(sleep("00:61:00"), None);
        assert_eq!(sleep("five"), None);
        assert_eq!(base("{}").sleep(), None);
    }

    #[test]
    fn links_stay_on_the_server() {
        let config: DdiConfig = toml::from_str(
            "server-url = \"https://fleet.example.com\"\ncontroller-id = \"dev-1\"\ntarget-token = \"t\"",
        )
        .unwrap();
        let client = DdiClient::new(&config).unwrap();
        assert_eq!(
            client.base().as_str(),
            "https://fleet.example.com/DEFAULT/controller/v1/dev-1"
        );
        assert!(client
            .resolve("https://fleet.example.com/DEFAULT/controller/v1/dev-1/deploymentBase/3?c=1")
            .is_ok());
        for bad in [
            "https://evil.example.com/DEFAULT/controller/v1/dev-1/deploymentBase/3",
            "http://fleet.example.com/DEFAULT/controller/v1/dev-1/deploymentBase/3",
            "https://fleet.example.com:8443/x",
        ] {
            assert!(
                matches!(client.resolve(bad), Err(DdiError::Link { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_may_be_numbers() {
        let cancel: CancelActionBase =
            serde_json::from_str(r#"{"id": 12, "cancelAction": {"stopId": "11"}}"#).unwrap();
        assert_eq!(
            (cancel.id.as_str(), cancel.cancel_action.stop_id.as_str()),
            ("12", "11")
        );
    }
}
