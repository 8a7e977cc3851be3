//! What the benchmarks share: the tool binary, timing, test images, peak memory.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod summary;

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;

/// The release `suit-tool` built for the bench.
pub fn tool() -> &'static str {
    env!("CARGO_BIN_EXE_suit-tool")
}

/// Runs a command that must succeed.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The median of some durations.
pub fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Median wall time of `n` runs of `f`.
pub fn time_runs(n: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// Writes `size` bytes (a multiple of a MiB) of deterministic pseudo-random data.
pub fn make_image(path: &Path, size: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; MIB as usize];
    for _ in 0..size / MIB {
        for b in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        f.write_all(&chunk).unwrap();
    }
    f.flush().unwrap();
}

/// Peak RSS in KiB of a command, via GNU time (`None` without /usr/bin/time).
pub fn peak_rss_kib(cmd: &Command) -> Option<u64> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return None;
    }
    let out = Command::new(time)
        .args(["-f", "%M"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

/// Vendor and class ids of the bench envelopes (`example.com` / `bench`).
pub fn ids() -> (String, String) {
    let v = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, b"example.com");
    let c = uuid::Uuid::new_v5(&v, b"bench");
    (v.to_string(), c.to_string())
}

/// The directory of `make bench`'s figures, `build/bench` in the repository.
pub fn summary_dir() -> std::path::PathBuf {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    host.parent().unwrap_or(host).join("build/bench")
}

/// One bench binary's named figures. [`Summary::write`] saves them as `build/bench/<bench>.json`
/// and merges every bench's file into the flat object `build/bench/summary.json` (`make bench`
/// empties `build/bench` first, so no figure of an earlier run survives).
pub struct Summary {
    bench: &'static str,
    figures: serde_json::Map<String, serde_json::Value>,
}

impl Summary {
    /// No figures yet for the bench binary `bench`.
    pub fn new(bench: &'static str) -> Self {
        Summary {
            bench,
            figures: serde_json::Map::new(),
        }
    }

    /// Records a figure, rounded to 4 significant digits.
    pub fn record(&mut self, key: &str, value: f64) {
        let rounded = if value == 0.0 || !value.is_finite() {
            value
        } else {
            let scale = 10f64.powi(3 - value.abs().log10().floor() as i32);
            (value * scale).round() / scale
        };
        let number = serde_json::Number::from_f64(rounded)
            .unwrap_or_else(|| panic!("figure {key} is not a number: {value}"));
        assert!(
            self.figures
                .insert(key.to_string(), number.into())
                .is_none(),
            "figure {key} recorded twice"
        );
    }

    /// Records a count (bytes, invocations).
    pub fn record_count(&mut self, key: &str, value: u64) {
        assert!(
            self.figures.insert(key.to_string(), value.into()).is_none(),
            "figure {key} recorded twice"
        );
    }

    /// Writes this bench's figures and merges all the benches' into `summary.json`.
    pub fn write(self) {
        let (own, summary) = summary::write_and_merge(&summary_dir(), self.bench, &self.figures);
        println!(
            "figures: {} (merged into {})",
            own.display(),
            summary.display()
        );
    }
}
