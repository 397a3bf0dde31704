//! The runtime's hooks for operability: one call per lifecycle step, each
//! turning into metrics (`metrics.rs`) and lifecycle events (`events.rs`).
//! `session.rs` and `manager.rs` call these and nothing else, and every
//! store the manager uses is wrapped in [`MeteredStore`].

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use crate::clock::Clock;
use crate::data::SessionData;
use crate::events::{
    DestroyCause, EventKind, EventStats, Fingerprint, RawEvent, RotationCause, Sink,
};
use crate::id::{InvalidId, SessionId};
use crate::metrics::{self, CommitOutcome, StoreOperation};
use crate::plan::FieldPlan;
use crate::record::Record;
use crate::store::{Call, DynSessionStore, StoreError, StoreLayer, Write, WriteKind};

/// A manager's metrics and event hooks.
pub(crate) struct Observer {
    sink: Option<Arc<dyn Sink>>,
    clock: Arc<dyn Clock>,
}

impl Observer {
    pub(crate) fn new(sink: Option<Arc<dyn Sink>>, clock: Arc<dyn Clock>) -> Self {
        Self { sink, clock }
    }

    /// Whether events carry the session's data (a listener is set), so a
    /// commit must decode all of it for [`Observer::written`].
    pub(crate) fn wants_data(&self) -> bool {
        self.sink.is_some()
    }

    pub(crate) fn event_stats(&self) -> Option<EventStats> {
        self.sink.as_ref().map(|s| s.stats())
    }

    fn emit(&self, kind: EventKind, id: &SessionId, data: Option<&dyn Any>) {
        if let Some(sink) = &self.sink {
            sink.emit(RawEvent {
                kind,
                session: Fingerprint::of(id),
                data,
                at_ms: self.clock.now_ms(),
            });
        }
    }

    /// A commit ended without a write of its own.
    pub(crate) fn commit(&self, outcome: CommitOutcome) {
        metrics::commit(outcome);
    }

    /// A commit's write applied; `data` is the session's data it stored.
    pub(crate) fn written(&self, write: &Write, fields: &[FieldPlan], data: &dyn Any) {
        metrics::commit(CommitOutcome::Written);
        metrics::session_size(encoded_size(fields));
        match &write.kind {
            WriteKind::Create => {
                metrics::created();
                self.emit(EventKind::Created, &write.id, Some(data));
            }
            WriteKind::Rotate { to, grace_ms, .. } => {
                let cause = rotation_cause(*grace_ms);
                metrics::rotated(cause.as_str());
                let previous = Fingerprint::of(&write.id);
                self.emit(EventKind::Rotated { cause, previous }, to, Some(data));
            }
            WriteKind::Update => {}
        }
    }

    /// A commit deleted the stored session `id`.
    pub(crate) fn destroyed(&self, id: &SessionId, cause: DestroyCause) {
        metrics::destroyed(cause.as_str());
        self.emit(EventKind::Destroyed { cause }, id, None);
    }

    /// A load found the session under `id` expired.
    pub(crate) fn expired<T: SessionData>(&self, id: &SessionId, record: &Record) {
        metrics::expired_on_load();
        if self.sink.is_some() {
            let data: T = crate::data::decode_fields(&record.fields);
            self.emit(EventKind::ExpiredOnLoad, id, Some(&data));
        }
    }

    /// `delete_by_id` deleted the session under `id`.
    pub(crate) fn revoked(&self, id: &SessionId) {
        metrics::revoked();
        self.emit(EventKind::Revoked, id, None);
    }

    /// A client presented a malformed id.
    pub(crate) fn malformed(&self, error: &InvalidId) {
        metrics::rejected(match error {
            InvalidId::Length { .. } => "length",
            InvalidId::Character { .. } => "character",
        });
    }

    /// A client presented an id without a valid signature (signed ids on).
    pub(crate) fn unsigned(&self, refusal: &crate::signed_id::Refusal) {
        match refusal {
            crate::signed_id::Refusal::Signature => metrics::rejected("signature"),
            crate::signed_id::Refusal::Malformed(error) => self.malformed(error),
        }
    }

    /// A client presented a well-formed id under which no live session is stored.
    pub(crate) fn unknown(&self) {
        metrics::rejected("unknown");
    }

    /// A request runs with a degraded (anonymous, never saved) session.
    pub(crate) fn degraded(&self) {
        metrics::degraded();
    }

    fn store_result(
        &self,
        keys: &metrics::StoreKeys,
        operation: StoreOperation,
        started: Instant,
        id: &SessionId,
        error: Option<&StoreError>,
    ) {
        let kind = error.map(error_kind);
        metrics::store_operation(keys, operation, started.elapsed(), kind);
        if let Some(kind) = kind {
            self.emit(EventKind::StoreError { operation, kind }, id, None);
        }
    }
}

/// The encoded size of the session a write leaves: names and values of
/// every field it holds (what `maxSessionBytes` bounds).
pub(crate) fn encoded_size(fields: &[FieldPlan]) -> usize {
    fields
        .iter()
        .filter_map(|f| f.want.as_ref().map(|w| f.name.len() + w.len()))
        .sum()
}

/// Auto-renewal keeps the old id for a grace period; `regenerate` does not.
pub(crate) fn rotation_cause(grace_ms: u64) -> RotationCause {
    if grace_ms > 0 {
        RotationCause::Renew
    } else {
        RotationCause::Regenerate
    }
}

/// The `kind` label of a store error.
pub(crate) fn error_kind(error: &StoreError) -> &'static str {
    match error {
        StoreError::Unavailable(cause) if cause.is::<crate::breaker::CircuitOpen>() => {
            "circuit_open"
        }
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Timeout(_) => "timeout",
        StoreError::Corrupt(_) => "corrupt",
        StoreError::Backend(_) => "backend",
        StoreError::Unsupported(_) => "unsupported",
    }
}

/// Records the session's id fingerprint in the current `tracing` span's
/// `session` field, if the span declares one (see the crate docs).
pub(crate) fn record_span(id: &SessionId) {
    let span = tracing::Span::current();
    // The fingerprint hashes the id: only when a span wants it.
    if span.is_disabled() || !span.has_field("session") {
        return;
    }
    span.record("session", tracing::field::display(id.fingerprint()));
}

/// Every store a manager uses, measured: latency by operation and store,
/// errors by kind, and a lifecycle event for each failure.
pub(crate) struct MeteredStore {
    inner: Arc<dyn DynSessionStore>,
    observer: Arc<Observer>,
    keys: metrics::StoreKeys,
}

/// Wraps `store` so its operations are measured by `observer`.
pub(crate) fn instrument(
    store: Arc<dyn DynSessionStore>,
    observer: &Arc<Observer>,
) -> Arc<dyn DynSessionStore> {
    Arc::new(MeteredStore {
        keys: metrics::StoreKeys::new(store.label_dyn()),
        inner: store,
        observer: Arc::clone(observer),
    })
}

impl StoreLayer for MeteredStore {
    type Inner = dyn DynSessionStore;

    fn inner(&self) -> &Self::Inner {
        &*self.inner
    }

    async fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        operation: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> Result<T, StoreError> {
        let (measured, id) = match call {
            Call::Load(id) => (StoreOperation::Load, id),
            Call::Write(write) => (StoreOperation::Write, &write.id),
            Call::Delete(id) => (StoreOperation::Delete, id),
            // The principal index (sessions per user) is forwarded, not
            // measured per operation: its calls are rare (listing,
            // revocation), and a revocation's writes are the inner store's.
            _ => return operation.await,
        };
        let started = Instant::now();
        let result = operation.await;
        let error = result.as_ref().err();
        self.observer
            .store_result(&self.keys, measured, started, id, error);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn the_encoded_size_counts_names_and_values_of_what_is_kept() {
        let field = |name, want: Option<&'static [u8]>| FieldPlan {
            name,
            stored: None,
            want: want.map(Bytes::from_static),
            expect: false,
        };
        let fields = [
            field("ab", Some(b"123")),
            field("c", None),
            field("de", Some(b"")),
        ];
        assert_eq!(encoded_size(&fields), 2 + 3 + 2);
    }

    #[test]
    fn a_grace_period_means_renewal() {
        assert_eq!(rotation_cause(5_000), RotationCause::Renew);
        assert_eq!(rotation_cause(0), RotationCause::Regenerate);
    }
}
