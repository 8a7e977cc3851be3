//! SUIT reports: the TA's signed record of an attempt, kept on the device and posted.

use std::io;
use std::path::{Path, PathBuf};

use super::Agent;

impl Agent {
    /// Keeps the TA's signed SUIT report of this session's attempt in `<state-dir>/reports`
    /// (the newest [`KEPT_REPORTS`]) and posts it to the report URL when one is configured.
    /// A report that cannot be made, kept or sent is logged, never fatal: the update itself
    /// is already decided.
    pub(super) fn file_report(&mut self) {
        let report = match self.tee.report(self.nonce.as_deref()) {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!("no SUIT report from the TA: {e}");
                return;
            }
        };
        let dir = self.config.state_dir.join("reports");
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let name = report_file_name(since_epoch, std::process::id());
        let kept = std::fs::create_dir_all(&dir)
            .and_then(|()| super::atomic::replace_file(&dir.join(&name), &report))
            .and_then(|()| prune_reports(&dir));
        match kept {
            Ok(()) => tracing::info!("SUIT report kept in {}", dir.join(&name).display()),
            Err(e) => tracing::warn!("cannot keep the SUIT report in {}: {e}", dir.display()),
        }
        if let Some(url) = &self.config.report_url {
            match self
                .fetcher
                .post(url, suit_shared::report::CONTENT_TYPE, &report)
            {
                Ok(()) => tracing::info!("SUIT report sent to {url}"),
                Err(e) => tracing::warn!("cannot send the SUIT report to {url}: {e}"),
            }
        }
    }
}

/// Signed reports kept in the state directory.
const KEPT_REPORTS: usize = 32;

/// The file name of a report made `since_epoch` after the Unix epoch by process `pid`: names
/// sort by time down to the nanosecond (an install and the boot-check that follows it can
/// file reports within the same second).
fn report_file_name(since_epoch: std::time::Duration, pid: u32) -> String {
    format!(
        "{:012}.{:09}-{:05}.suit-report",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
        pid % 100_000
    )
}

/// Removes all but the newest [`KEPT_REPORTS`] reports (names sort by time).
fn prune_reports(dir: &Path) -> io::Result<()> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "suit-report"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(KEPT_REPORTS);
    for old in &names[..excess] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::report_file_name;

    #[test]
    fn report_names_sort_by_time_within_one_second() {
        let earlier = report_file_name(Duration::new(1_700_000_000, 100), 99_999);
        let later = report_file_name(Duration::new(1_700_000_000, 200), 1);
        let next_second = report_file_name(Duration::new(1_700_000_001, 0), 50_000);
        assert!(earlier < later, "{earlier} / {later}");
        assert!(later < next_second, "{later} / {next_second}");
        assert!(earlier.ends_with(".suit-report"));
    }
}
