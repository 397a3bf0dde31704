//! The sweeper: deletes expired sessions and tombstones in batches, on an
//! interval, in a task that ends when the store is dropped. Its figures go
//! to the metrics (`sessionkit_store_swept_total`,
//! `sessionkit_store_sweep_duration_seconds`,
//! `sessionkit_store_sweep_failures_total`).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Inner, PostgresStore};
use crate::store::StoreError;

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresSweep {
    /// Expired sessions deleted (their fields and tombstones with them).
    pub sessions: u64,
    /// Tombstones deleted after their grace period.
    pub tombstones: u64,
    /// Statements it took (one per batch, and one that found less than a
    /// batch for each table).
    pub batches: u32,
}

/// Whether another batch is due after one that deleted `deleted` rows out
/// of at most `batch`: only a full batch may have left more behind.
pub(crate) fn more_after(deleted: u64, batch: i64) -> bool {
    u64::try_from(batch).is_ok_and(|b| deleted >= b)
}

impl PostgresStore {
    /// Deletes every session and tombstone that has expired by the
    /// database's clock, one batch ([`sweep_batch`](super::PostgresStoreBuilder::sweep_batch)
    /// rows, each batch its own short transaction that skips rows locked by
    /// a write) at a time. The background sweeper calls it on its interval;
    /// call it from a job of your own when the interval is `None`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; what was deleted stays deleted.
    pub async fn sweep(&self) -> Result<PostgresSweep, StoreError> {
        let started = Instant::now();
        let result = sweep_inner(&self.inner).await;
        let took = started.elapsed();
        match &result {
            Ok(sweep) => {
                crate::metrics::swept(self.label_str(), sweep.sessions, sweep.tombstones, took)
            }
            Err(_) => crate::metrics::sweep_failed(self.label_str()),
        }
        result
    }

    /// Starts the background sweeper, if it has an interval.
    pub(crate) fn start_sweeper(&self) {
        let Some(interval) = self.inner.sweep_interval else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("PostgresStore: no Tokio runtime at connect; the sweeper does not run (call PostgresStore::sweep from a job)");
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(run(weak, interval));
    }

    fn label_str(&self) -> &'static str {
        "postgres"
    }
}

/// The sweeper's loop: sleeps, sweeps, until the store is gone.
async fn run(store: Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = store.upgrade() else {
            return;
        };
        let store = PostgresStore { inner };
        if let Err(error) = store.sweep().await {
            tracing::warn!(
                error = %crate::error::chain(&error),
                "PostgresStore: the sweep of expired sessions failed; the next one retries"
            );
        }
    }
}

async fn sweep_inner(inner: &Arc<Inner>) -> Result<PostgresSweep, StoreError> {
    let mut sweep = PostgresSweep::default();
    for (statement, count) in [
        (&inner.statements.sweep_sessions, 0usize),
        (&inner.statements.sweep_moves, 1usize),
    ] {
        loop {
            let deleted = inner.execute(statement, &[&inner.sweep_batch]).await?;
            sweep.batches += 1;
            if count == 0 {
                sweep.sessions += deleted;
            } else {
                sweep.tombstones += deleted;
            }
            if !more_after(deleted, inner.sweep_batch) {
                break;
            }
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_batch_asks_for_another() {
        assert!(more_after(1_000, 1_000));
        assert!(!more_after(999, 1_000));
        assert!(!more_after(0, 1));
    }
}
