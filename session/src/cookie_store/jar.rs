//! One request's cookie session as a store: a single slot seeded with what
//! the request's cookie held, that the commit writes, rotates and deletes
//! exactly as it would a server store. What the slot holds after the commit
//! is what the response's cookie carries.

use std::sync::{Mutex, PoisonError};

use crate::id::SessionId;
use crate::record::{Fields, Record};
use crate::store::{
    apply_change, expectations_hold, Loaded, SessionStore, StoreError, Write, WriteKind, Written,
};

/// The session one request's cookie carries, as a store of one.
#[derive(Debug, Default)]
pub(crate) struct Jar {
    slot: Mutex<Option<(SessionId, Record)>>,
}

impl Jar {
    /// A jar holding the session a cookie opened to.
    pub(crate) fn holding(id: SessionId, record: Record) -> Self {
        Self {
            slot: Mutex::new(Some((id, record))),
        }
    }

    /// `f` of what the jar holds now (what the response's cookie must
    /// carry), `None` when it is empty.
    pub(crate) fn with_contents<R>(&self, f: impl FnOnce(&SessionId, &Record) -> R) -> Option<R> {
        self.slot().as_ref().map(|(id, record)| f(id, record))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(SessionId, Record)>> {
        // Every change below is one assignment: a poisoned lock holds a
        // consistent value.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `write` applied to what the jar holds (a pure step of the store).
fn apply(slot: &mut Option<(SessionId, Record)>, write: &Write) -> Written {
    if write.kind == WriteKind::Create {
        let mut fields = Fields::with_capacity(write.set.len());
        apply_change(&mut fields, write);
        *slot = Some((
            write.id.clone(),
            Record {
                meta: write.meta,
                fields,
            },
        ));
        return Written::Done;
    }
    let Some((id, record)) = slot.as_mut() else {
        return Written::Gone;
    };
    if *id != write.id {
        return Written::Gone;
    }
    if !expectations_hold(&record.fields, &write.expect) {
        return Written::Conflict(record.clone());
    }
    apply_change(&mut record.fields, write);
    if write.meta_changed {
        record.meta = write.meta;
    } else {
        record.meta.last_access = write.meta.last_access;
    }
    if let WriteKind::Rotate { to, .. } = &write.kind {
        // One cookie, one session: the old id has nowhere to live on.
        *id = to.clone();
    }
    Written::Done
}

impl SessionStore for Jar {
    async fn load(&self, id: &SessionId, _now: u64) -> Result<Loaded, StoreError> {
        Ok(match &*self.slot() {
            Some((held, record)) if held == id => Loaded::Session(record.clone()),
            _ => Loaded::Absent,
        })
    }

    async fn write(&self, write: &Write) -> Result<Written, StoreError> {
        Ok(apply(&mut self.slot(), write))
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|(held, _)| held == id) {
            *slot = None;
        }
        Ok(())
    }

    fn label(&self) -> &'static str {
        "cookie"
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::record::Meta;

    fn id(s: &str) -> SessionId {
        SessionId::parse(&format!("{s:0>20}")).unwrap()
    }

    fn write(
        kind: WriteKind,
        set: &[(&'static str, &'static [u8])],
        expect: &[(&'static str, Option<&'static [u8]>)],
    ) -> Write {
        Write {
            id: id("a"),
            kind,
            now: 5,
            meta: Meta::new(5, 100, None),
            meta_changed: false,
            ttl_ms: 100,
            set: set
                .iter()
                .map(|(n, v)| (*n, Bytes::from_static(v)))
                .collect(),
            remove: Vec::new(),
            expect: expect
                .iter()
                .map(|(n, v)| (*n, v.map(Bytes::from_static)))
                .collect(),
            principal: None,
        }
    }

    #[test]
    fn the_slot_is_created_updated_rotated_and_deleted() {
        let mut slot = None;
        assert_eq!(
            apply(&mut slot, &write(WriteKind::Update, &[], &[])),
            Written::Gone
        );
        assert_eq!(
            apply(&mut slot, &write(WriteKind::Create, &[("n", b"1")], &[])),
            Written::Done
        );
        assert_eq!(
            apply(
                &mut slot,
                &write(WriteKind::Update, &[("n", b"2")], &[("n", Some(b"1"))])
            ),
            Written::Done
        );
        let conflict = apply(
            &mut slot,
            &write(WriteKind::Update, &[("n", b"3")], &[("n", Some(b"1"))]),
        );
        assert!(
            matches!(conflict, Written::Conflict(r) if r.fields.get("n").unwrap().as_ref() == b"2")
        );
        let rotate = WriteKind::Rotate {
            to: id("b"),
            grace_ms: 0,
            full: Vec::new(),
            loaded: Vec::new(),
        };
        assert_eq!(apply(&mut slot, &write(rotate, &[], &[])), Written::Done);
        let (held, record) = slot.clone().unwrap();
        assert_eq!(held, id("b"));
        assert_eq!(record.fields.get("n").unwrap().as_ref(), b"2");
        // The old id is gone.
        assert_eq!(
            apply(&mut slot, &write(WriteKind::Update, &[], &[])),
            Written::Gone
        );
    }

    #[tokio::test]
    async fn deleting_empties_the_jar() {
        let jar = Jar::holding(
            id("a"),
            Record {
                meta: Meta::new(0, 10, None),
                fields: Fields::default(),
            },
        );
        jar.delete(&id("b")).await.unwrap();
        assert_eq!(jar.with_contents(|held, _| held.clone()), Some(id("a")));
        jar.delete(&id("a")).await.unwrap();
        assert_eq!(jar.with_contents(|held, _| held.clone()), None);
        assert_eq!(jar.load(&id("a"), 0).await.unwrap(), Loaded::Absent);
    }
}
