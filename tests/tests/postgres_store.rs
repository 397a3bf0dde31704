//! The PostgreSQL store against a server started by the test: the
//! acceptance suite, the store contract, then the PostgreSQL-specific
//! checks (layout, statements per request, schema, sweeper, faults).

mod acceptance {
    use sessionkit::PostgresStore;
    use sessionkit_tests::postgres_server::{unique_table, PostgresServer};

    sessionkit_tests::acceptance_suite!(async {
        PostgresStore::builder(PostgresServer::shared().url())
            .table(unique_table("acceptance"))
            .connect()
            .await
            .expect("store")
    });
}

mod contract {
    use sessionkit::PostgresStore;
    use sessionkit_tests::postgres_server::{unique_table, PostgresServer};

    sessionkit_tests::all_store_contract_cases!(async {
        PostgresStore::builder(PostgresServer::shared().url())
            .table(unique_table("contract"))
            .connect()
            .await
            .expect("store")
    });
}
