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
    /// A worker failed: nobody waits for a batch that will never come.
    aborted: bool,
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
                aborted: false,
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
        while !turn.aborted && turn.next != batch {
            turn = self.turned.wait(turn).map_err(|_| Aborted)?;
        }
        if turn.aborted {
            return Err(Aborted);
        }
        let out = f(&mut turn.value);
        turn.next += 1;
        self.turned.notify_all();
        Ok(out)
    }

    /// Wakes every waiter with [`Aborted`].
    pub(crate) fn abort(&self) {
        let mut turn = match self.state.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        turn.aborted = true;
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
    fn abort_wakes_a_waiter() {
        let state = Ordered::new(());
        std::thread::scope(|s| {
            let waiter = s.spawn(|| state.in_turn(Some(3), |_| ()));
            std::thread::sleep(std::time::Duration::from_millis(20));
            state.abort();
            assert!(waiter.join().unwrap().is_err());
        });
    }
}
