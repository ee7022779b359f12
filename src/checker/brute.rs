//! A brute-force linearizability checker, the reference the real search is tested
//! against.
//!
//! It tries every order of the calls that respects real time (a call may go next only if
//! no unplaced completed call returned before it was invoked), applies the model's own
//! `step` on full states, and lets open calls be left out. No memo, no lists, no twin
//! deduplication: nothing it shares with [`super::search`] but the definition. It is
//! exponential, so it refuses histories of more than [`MAX_CALLS`] calls.

use super::model::Model;
use super::search::Span;

/// The most calls [`linearizable`] accepts (12! orders is already slow).
pub const MAX_CALLS: usize = 12;

/// Whether `calls` (with their `spans`) can be linearized under `model`.
pub fn linearizable<M: Model>(
    model: &M,
    calls: &[M::Call],
    spans: &[Span],
) -> Result<bool, String> {
    if calls.len() > MAX_CALLS || calls.len() != spans.len() {
        return Err(format!(
            "brute force takes at most {MAX_CALLS} calls with one span each, got {} calls and {} spans",
            calls.len(),
            spans.len()
        ));
    }
    let completed = spans.iter().filter(|s| !s.is_open()).count();
    let mut placed = vec![false; calls.len()];
    Ok(extend(
        model,
        calls,
        spans,
        &mut placed,
        &model.init(),
        completed,
    ))
}

fn extend<M: Model>(
    model: &M,
    calls: &[M::Call],
    spans: &[Span],
    placed: &mut [bool],
    state: &M::State,
    left: usize,
) -> bool {
    if left == 0 {
        return true;
    }
    for c in 0..calls.len() {
        if placed[c] {
            continue;
        }
        let blocked = (0..calls.len())
            .any(|d| !placed[d] && d != c && !spans[d].is_open() && spans[d].ret < spans[c].invoke);
        if blocked {
            continue;
        }
        if let Some(next) = model.step(state, &calls[c]) {
            placed[c] = true;
            let left = left - usize::from(!spans[c].is_open());
            if extend(model, calls, spans, placed, &next, left) {
                return true;
            }
            placed[c] = false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::model::mutex::MutexCall;
    use crate::checker::model::Mutex;
    use crate::checker::search::OPEN;

    #[test]
    fn overlapping_acquires_cannot_both_succeed() {
        let calls = [MutexCall::Acquire, MutexCall::Acquire];
        let spans = [Span { invoke: 0, ret: 2 }, Span { invoke: 1, ret: 3 }];
        assert_eq!(linearizable(&Mutex, &calls, &spans), Ok(false));
    }

    #[test]
    fn an_open_call_may_be_left_out() {
        let calls = [MutexCall::Acquire, MutexCall::Acquire];
        let spans = [
            Span {
                invoke: 0,
                ret: OPEN,
            },
            Span { invoke: 1, ret: 3 },
        ];
        assert_eq!(linearizable(&Mutex, &calls, &spans), Ok(true));
    }

    #[test]
    fn refuses_large_histories() {
        let calls = vec![MutexCall::Acquire; MAX_CALLS + 1];
        let spans = vec![
            Span {
                invoke: 0,
                ret: OPEN
            };
            MAX_CALLS + 1
        ];
        assert!(linearizable(&Mutex, &calls, &spans).is_err());
    }
}
