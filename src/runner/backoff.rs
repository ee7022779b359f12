//! A worker's pause after consecutive failures (`workload.backoff`): how many failures in a
//! row, and how long to wait before the next op. Owns no time and no journal; the worker
//! loop sleeps and counts.

use crate::history::{OpType, COMPARE_FAILED};
use crate::spec::workload::BackoffSpec;
use crate::target::client::Completion;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// One worker's run of failures and its jitter source.
#[derive(Debug)]
pub(super) struct Backoff {
    spec: BackoffSpec,
    failures: u32,
    rng: ChaCha8Rng,
}

impl Backoff {
    /// Jitter drawn from the run's seed and the worker's slot, never from the generator:
    /// pausing must not change which ops a seed produces.
    pub(super) fn new(spec: &BackoffSpec, seed: u64, slot: u32) -> Backoff {
        let stream = 0x6261_636b_6f66_6600 ^ u64::from(slot).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Backoff {
            spec: spec.clone(),
            failures: 0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ stream),
        }
    }

    /// The pause before the next op, given how the last one ended.
    pub(super) fn after(&mut self, c: &Completion) -> Option<Duration> {
        let answered = match c.kind {
            OpType::Ok => true,
            // The target compared and said no: it serves, which is what a pause waits for.
            OpType::Fail => c.error.as_deref() == Some(COMPARE_FAILED),
            OpType::Info | OpType::Invoke => false,
        };
        if answered {
            self.failures = 0;
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        let spec = &self.spec;
        if spec.max.is_zero() || self.failures < spec.after {
            return None;
        }
        let doublings = (self.failures - spec.after).min(30);
        let cap = spec.initial.saturating_mul(1 << doublings).min(spec.max);
        // Between half and all of the cap, so workers that failed together spread out.
        Some(cap.mul_f64(0.5 + 0.5 * self.rng.random::<f64>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(kind: OpType, error: Option<&str>) -> Completion {
        Completion {
            kind,
            value: serde_json::Value::Null,
            error: error.map(str::to_string),
            node: "n1".into(),
        }
    }

    fn spec() -> BackoffSpec {
        BackoffSpec {
            after: 3,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
        }
    }

    #[test]
    fn pauses_from_the_nth_failure_in_a_row_doubling_up_to_the_cap() {
        let mut b = Backoff::new(&spec(), 1, 0);
        let refused = done(OpType::Fail, Some("connection refused"));
        let pauses: Vec<Option<Duration>> = (0..8).map(|_| b.after(&refused)).collect();
        assert_eq!(pauses[..2], [None, None]);
        let caps = [10, 20, 40, 80, 100, 100];
        for (p, cap) in pauses[2..].iter().zip(caps) {
            let p = p.expect("pausing");
            let cap = Duration::from_millis(cap);
            assert!(p >= cap / 2 && p <= cap, "{p:?} outside {cap:?}");
        }
    }

    #[test]
    fn an_ok_or_a_failed_comparison_ends_the_run_of_failures() {
        let mut b = Backoff::new(&spec(), 1, 0);
        let lost = done(OpType::Info, Some("timed out"));
        for ender in [
            done(OpType::Ok, None),
            done(OpType::Fail, Some(COMPARE_FAILED)),
        ] {
            assert!(b.after(&lost).is_none());
            assert!(b.after(&lost).is_none());
            assert!(b.after(&lost).is_some());
            assert!(b.after(&ender).is_none());
        }
        assert!(b.after(&lost).is_none(), "counting starts again");
    }

    #[test]
    fn a_zero_cap_never_pauses() {
        let mut b = Backoff::new(
            &BackoffSpec {
                max: Duration::ZERO,
                ..spec()
            },
            1,
            0,
        );
        let refused = done(OpType::Fail, None);
        assert!((0..50).all(|_| b.after(&refused).is_none()));
    }

    #[test]
    fn the_same_seed_and_slot_give_the_same_pauses() {
        let refused = done(OpType::Fail, None);
        let draw = |seed, slot| {
            let mut b = Backoff::new(&spec(), seed, slot);
            (0..10).map(|_| b.after(&refused)).collect::<Vec<_>>()
        };
        assert_eq!(draw(4, 2), draw(4, 2));
        assert_ne!(draw(4, 2), draw(4, 3));
    }
}
