//! Budgets: the wall-clock deadline and the memory ceiling every search runs under.
//!
//! A search that would exceed either stops and reports [`Exhausted`]; the checker turns
//! that into an `unknown` verdict with the reason. Searches on different keys run in
//! parallel and share one [`Budget`]: each reports the bytes it holds through a
//! [`Meter`], so the ceiling applies to their sum.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared limits of one check.
#[derive(Debug)]
pub struct Budget {
    deadline: Instant,
    time_limit: Duration,
    memory_limit_bytes: u64,
    /// Bytes held by the prepared history and every running search.
    used_bytes: AtomicU64,
    started: Instant,
    /// Nanoseconds after `started` from which every search stops ([`Exhausted::Cancelled`]);
    /// `u64::MAX`: never. Set once the verdict is decided (a key was found invalid).
    stop_at_ns: AtomicU64,
}

/// Why a search stopped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    Time {
        limit: Duration,
    },
    Memory {
        limit_bytes: u64,
        used_bytes: u64,
    },
    /// Another key already decided the verdict.
    Cancelled,
}

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exhausted::Time { limit } => {
                write!(
                    f,
                    "time limit of {} reached",
                    humantime::format_duration(*limit)
                )
            }
            Exhausted::Memory {
                limit_bytes,
                used_bytes,
            } => write!(
                f,
                "memory limit of {} reached (search held {})",
                format_bytes(*limit_bytes),
                format_bytes(*used_bytes)
            ),
            Exhausted::Cancelled => f.write_str("stopped: another key already decided the verdict"),
        }
    }
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `17 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parse `2GiB`, `512MiB`, `1.5G`, `100M`, `4096` (bytes). Binary units throughout: `G`
/// and `GB` mean GiB here, since memory is what is being limited.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 2GiB, 512MiB or 1048576"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "unknown size unit {u:?} in {text:?} (use B, KiB, MiB, GiB)"
            ))
        }
    };
    let bytes = num * scale as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("size {text:?} is out of range"));
    }
    Ok(bytes as u64)
}

impl Budget {
    pub fn new(time_limit: Duration, memory_limit_bytes: u64) -> Budget {
        let now = Instant::now();
        Budget {
            deadline: now
                .checked_add(time_limit)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            time_limit,
            memory_limit_bytes,
            used_bytes: AtomicU64::new(0),
            started: now,
            stop_at_ns: AtomicU64::new(u64::MAX),
        }
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub fn memory_limit_bytes(&self) -> u64 {
        self.memory_limit_bytes
    }

    /// Stop every search of this check as soon as it next looks at its budget.
    pub fn cancel(&self) {
        self.stop_at_ns.store(0, Ordering::Relaxed);
    }

    /// Stop every search of this check `grace` from now (or earlier, if cancelled
    /// earlier already): searches under way may still finish within it.
    pub fn cancel_after(&self, grace: Duration) {
        let at = self.started.elapsed().saturating_add(grace).as_nanos();
        self.stop_at_ns
            .fetch_min(u64::try_from(at).unwrap_or(u64::MAX - 1), Ordering::Relaxed);
    }

    /// Whether time, memory or cancellation says stop.
    pub fn check(&self) -> Result<(), Exhausted> {
        let stop_at = self.stop_at_ns.load(Ordering::Relaxed);
        if stop_at != u64::MAX {
            let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if now >= stop_at {
                return Err(Exhausted::Cancelled);
            }
        }
        let used = self.used_bytes.load(Ordering::Relaxed);
        if used > self.memory_limit_bytes {
            return Err(Exhausted::Memory {
                limit_bytes: self.memory_limit_bytes,
                used_bytes: used,
            });
        }
        if Instant::now() >= self.deadline {
            return Err(Exhausted::Time {
                limit: self.time_limit,
            });
        }
        Ok(())
    }

    /// A meter through which one holder reports its bytes.
    pub fn meter(&self) -> Meter<'_> {
        Meter {
            budget: self,
            reported: 0,
        }
    }
}

/// One holder's share of the memory budget; its bytes are released when it is dropped.
#[derive(Debug)]
pub struct Meter<'a> {
    budget: &'a Budget,
    reported: u64,
}

impl Meter<'_> {
    /// Record that the holder now holds `bytes`, then check the budget.
    pub fn update(&mut self, bytes: u64) -> Result<(), Exhausted> {
        if bytes >= self.reported {
            self.budget
                .used_bytes
                .fetch_add(bytes - self.reported, Ordering::Relaxed);
        } else {
            self.budget
                .used_bytes
                .fetch_sub(self.reported - bytes, Ordering::Relaxed);
        }
        self.reported = bytes;
        self.budget.check()
    }
}

impl Drop for Meter<'_> {
    fn drop(&mut self) {
        self.budget
            .used_bytes
            .fetch_sub(self.reported, Ordering::Relaxed);
    }
}

/// Start measuring the process's peak resident memory afresh (Linux: `5` to
/// `/proc/self/clear_refs` resets `VmHWM`), so that [`peak_rss_bytes`] afterwards tells
/// what a check needed rather than what a run held before it. Best effort: where that
/// file is missing or not writable the peak stays the process's whole-life peak.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", b"5");
}

/// The process's peak resident memory (`VmHWM` of `/proc/self/status`), in bytes;
/// `None` where the kernel does not say.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_sizes() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").unwrap_err().contains("unit"));
    }

    #[test]
    fn memory_over_the_limit_is_exhaustion_and_is_released_on_drop() {
        let budget = Budget::new(Duration::from_secs(60), 1000);
        {
            let mut a = budget.meter();
            assert!(a.update(600).is_ok());
            let mut b = budget.meter();
            assert!(matches!(b.update(600), Err(Exhausted::Memory { .. })));
        }
        assert!(budget.check().is_ok());
    }

    #[test]
    fn a_passed_deadline_is_exhaustion() {
        let budget = Budget::new(Duration::ZERO, u64::MAX);
        assert!(matches!(budget.check(), Err(Exhausted::Time { .. })));
    }

    #[test]
    fn a_cancellation_with_grace_stops_searches_only_once_the_grace_is_over() {
        let budget = Budget::new(Duration::from_secs(60), u64::MAX);
        budget.cancel_after(Duration::from_secs(30));
        assert!(budget.check().is_ok());
        // An earlier stop wins over a later one.
        budget.cancel_after(Duration::ZERO);
        budget.cancel_after(Duration::from_secs(30));
        assert_eq!(budget.check(), Err(Exhausted::Cancelled));
    }

    #[test]
    fn the_peak_rss_covers_memory_touched_after_a_reset() {
        // Other tests may reset the peak at any time (every check does), but never below
        // what is resident, and this block stays resident until the end.
        reset_peak_rss();
        let block = vec![1u8; 64 << 20];
        let peak = peak_rss_bytes().expect("Linux reports VmHWM");
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        assert!(peak >= 64 << 20, "{peak}");
    }

    #[test]
    fn formats_sizes_for_people() {
        assert_eq!(format_bytes(17), "17 B");
        assert_eq!(format_bytes(2 << 30), "2.0 GiB");
        assert_eq!(format_bytes(300 << 20), "300 MiB");
    }
}
