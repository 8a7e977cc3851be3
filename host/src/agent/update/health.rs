//! The health check of a trial boot and the runner of configured commands.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{Agent, AgentError};

impl Agent {
    /// Runs the configured reboot command, if any.
    pub(super) fn reboot(&self) -> Result<(), AgentError> {
        match &self.config.reboot_command {
            None => Ok(()),
            Some(cmd) => run_command(cmd, Duration::from_secs(60)).map_err(AgentError::Plan),
        }
    }

    pub(super) fn health_check(&self) -> Result<(), AgentError> {
        match &self.config.health_check {
            None => Ok(()),
            Some(check) => {
                run_command(&check.command, check.timeout).map_err(AgentError::Unhealthy)
            }
        }
    }
}

/// Runs `command` (no shell) with a timeout; Err describes the failure.
fn run_command(command: &[String], timeout: Duration) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or("empty command")?;
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().map_err(|e| format!("{program}: {e}"))? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(format!("{program} exited with {status}")),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {timeout:?}"));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
