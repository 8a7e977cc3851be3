//! The daemon: poll the channel, install what is new, reboot.

use super::{Agent, AgentError};

impl Agent {
    /// The daemon: polls the channel every poll interval and installs what `check` finds;
    /// reboots with the configured command after an install. With `[ddi]` it polls that
    /// fleet server instead (`fleet`). Never returns unless the configuration has neither.
    pub fn daemon(&mut self) -> Result<(), AgentError> {
        if let Some(ddi) = self.config.ddi.clone() {
            return self.fleet_daemon(&ddi);
        }
        let channel = self.config.channel_url.clone().ok_or_else(|| {
            AgentError::Config("the daemon needs channel-url or [ddi] in the configuration".into())
        })?;
        loop {
            match self.check(channel.as_str()) {
                Ok(plan) => {
                    tracing::info!("update available: sequence number {}", plan.sequence_number);
                    match self.install(channel.as_str()) {
                        Ok(installed) => {
                            tracing::info!(
                                "installed sequence {} into slot {}; reboot due",
                                installed.sequence_number,
                                installed.slot
                            );
                            self.reboot()?;
                        }
                        Err(e) => tracing::warn!("install failed: {e}"),
                    }
                }
                Err(AgentError::NothingToDo(msg)) => tracing::info!("{msg}"),
                Err(e) => tracing::warn!("channel check failed: {e}"),
            }
            std::thread::sleep(self.config.poll_interval);
        }
    }
}
