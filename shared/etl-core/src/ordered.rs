//! State that batches must update in input order while several workers process them:
//! dedup's seen-set, where the first occurrence of a row is the one kept.

use std::sync::{Condvar, Mutex};

pub(crate) struct Ordered<T> {
    state: Mutex<Turn<T>>,
    turned: Condvar,
}

struct Turn<T> {
    /// The batch whose turn it is.
    next: u64,
    /// A worker failed on this batch: later ones wait for a turn that will never come.
    /// Earlier ones still take theirs, so the first failure in input order is found.
    failed: Option<u64>,
    value: T,
}

/// Another worker failed (or panicked) while this one waited for its turn.
#[derive(Debug)]
pub(crate) struct Aborted;

impl<T> Ordered<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            state: Mutex::new(Turn {
                next: 0,
                failed: None,
                value,
            }),
            turned: Condvar::new(),
        }
    }

    /// Runs `f` on the state once every batch before `batch` has, then lets the next one
    /// through. `None` runs it at once and takes no turn (the pipeline's dry run).
    pub(crate) fn in_turn<R>(
        &self,
        batch: Option<u64>,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, Aborted> {
        let mut turn = self.state.lock().map_err(|_| Aborted)?;
        let Some(batch) = batch else {
            return Ok(f(&mut turn.value));
        };
        let gave_up = |turn: &Turn<T>| turn.failed.is_some_and(|f| batch > f);
        while !gave_up(&turn) && turn.next != batch {
            turn = self.turned.wait(turn).map_err(|_| Aborted)?;
        }
        if gave_up(&turn) {
            return Err(Aborted);
        }
        let out = f(&mut turn.value);
        turn.next += 1;
        self.turned.notify_all();
        Ok(out)
    }

    /// Batch `failed` will not take its turn: waiters for later batches give up with
    /// [`Aborted`]. `None` (a failure outside any batch) stops every waiter.
    pub(crate) fn abort_after(&self, failed: Option<u64>) {
        let mut turn = match self.state.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        let failed = failed.unwrap_or(0);
        turn.failed = Some(turn.failed.map_or(failed, |f| f.min(failed)));
        self.turned.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_update_in_order_whatever_order_they_arrive_in() {
        let log = Ordered::new(Vec::new());
        std::thread::scope(|s| {
            for batch in (0..8u64).rev() {
                let log = &log;
                s.spawn(move || log.in_turn(Some(batch), |l| l.push(batch)).unwrap());
            }
        });
        assert_eq!(
            log.in_turn(None, |l| l.clone()).unwrap(),
            (0..8).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_failed_batch_stops_later_batches_only() {
        let log = Ordered::new(Vec::new());
        std::thread::scope(|s| {
            let later = s.spawn(|| log.in_turn(Some(3), |l| l.push(3)));
            let earlier = s.spawn(|| log.in_turn(Some(1), |l| l.push(1)));
            // Batch 2 failed before its turn; batch 1 still waits for batch 0's.
            log.abort_after(Some(2));
            assert!(later.join().unwrap().is_err());
            log.in_turn(Some(0), |l| l.push(0)).unwrap();
            assert!(earlier.join().unwrap().is_ok());
        });
        assert_eq!(log.in_turn(None, |l| l.clone()).unwrap(), vec![0, 1]);
    }
}
