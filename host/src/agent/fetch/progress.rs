//! Progress of a fetch, for a person: a bar on a terminal, log lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::FetchError;

/// Receives the steps of a fetch. Every method has an empty default.
pub trait Progress {
    /// A transfer of `source` starts with `offset` bytes already staged; `total` is the full
    /// size when known. Called again when a retry resumes or restarts.
    fn started(&mut self, source: &str, offset: u64, total: Option<u64>) {
        let _ = (source, offset, total);
    }

    /// `done` bytes of the source are staged.
    fn advanced(&mut self, done: u64) {
        let _ = done;
    }

    /// An attempt failed with `error` (the `failures`-th in a row); the next starts after
    /// `delay`.
    fn retrying(&mut self, error: &FetchError, failures: u32, delay: Duration) {
        let _ = (error, failures, delay);
    }

    /// The source is completely staged: `size` bytes.
    fn finished(&mut self, size: u64) {
        let _ = size;
    }
}

/// Ignores progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Progress as `tracing` events: start, retries and end at info/warn level, and a line with
/// the bytes so far at most every `interval` in between.
#[derive(Debug)]
pub struct LogProgress {
    interval: Duration,
    source: String,
    total: Option<u64>,
    last_line: Instant,
}

impl LogProgress {
    /// Logs at most one progress line per `interval`.
    pub fn new(interval: Duration) -> LogProgress {
        LogProgress {
            interval,
            source: String::new(),
            total: None,
            last_line: Instant::now(),
        }
    }
}

impl Default for LogProgress {
    /// One progress line per 10 seconds.
    fn default() -> Self {
        LogProgress::new(Duration::from_secs(10))
    }
}

impl Progress for LogProgress {
    fn started(&mut self, source: &str, offset: u64, total: Option<u64>) {
        self.source = source.to_string();
        self.total = total;
        self.last_line = Instant::now();
        match (offset, total) {
            (0, Some(total)) => tracing::info!(source, total, "fetching"),
            (0, None) => tracing::info!(source, "fetching (size unknown)"),
            (offset, total) => tracing::info!(source, offset, ?total, "resuming"),
        }
    }

    fn advanced(&mut self, done: u64) {
        if self.last_line.elapsed() >= self.interval {
            self.last_line = Instant::now();
            tracing::info!(source = %self.source, done, total = ?self.total, "fetching");
        }
    }

    fn retrying(&mut self, error: &FetchError, failures: u32, delay: Duration) {
        tracing::warn!(%error, failures, ?delay, "fetch attempt failed; retrying");
    }

    fn finished(&mut self, size: u64) {
        tracing::info!(source = %self.source, size, "fetched");
    }
}

/// Progress as an indicatif bar on standard error.
#[derive(Debug)]
pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    /// A bar on standard error (hidden when that is not a terminal).
    pub fn new() -> BarProgress {
        BarProgress {
            bar: ProgressBar::no_length(),
        }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        BarProgress::new()
    }
}

impl Progress for BarProgress {
    fn started(&mut self, source: &str, offset: u64, total: Option<u64>) {
        let template = match total {
            Some(_) => "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            None => "{msg} {spinner} {bytes} {bytes_per_sec}",
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        self.bar.set_style(style);
        self.bar.set_message(source.to_string());
        match total {
            Some(total) => self.bar.set_length(total),
            None => self.bar.unset_length(),
        }
        self.bar.set_position(offset);
        self.bar.reset_eta();
    }

    fn advanced(&mut self, done: u64) {
        self.bar.set_position(done);
    }

    fn retrying(&mut self, error: &FetchError, failures: u32, delay: Duration) {
        self.bar.println(format!(
            "attempt failed ({failures} in a row): {error}; retrying in {}",
            humantime::format_duration(delay)
        ));
    }

    fn finished(&mut self, size: u64) {
        self.bar.set_position(size);
        self.bar.finish();
    }
}

/// A bar when standard error is a terminal, log lines otherwise (a service's journal).
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(BarProgress::new())
    } else {
        Box::new(LogProgress::default())
    }
}
