//! The acceptance suite against the in-memory store.

sessionkit_tests::acceptance_suite!(async { sessionkit::MemoryStore::new() });

mod contract {
    sessionkit_tests::all_store_contract_cases!(async { sessionkit::MemoryStore::new() });
}
