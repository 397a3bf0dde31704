//! The acceptance suite against the in-memory store.

sessionkit_tests::acceptance_suite!(async { sessionkit::MemoryStore::new() });
