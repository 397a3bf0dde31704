//! The store pattern: `cargo run --example background_task`.
//!
//! A session is created (as a request would), then a tokio task loads it by
//! id, changes it and saves it; the result is read back.

use sessionkit::{MemoryStore, SessionError, SessionManager};
use sessionkit_examples::background::{mark_report_ready, JobSession, JobSessionSessionExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SessionError> {
    let manager = SessionManager::<JobSession>::new(MemoryStore::new());

    // What a request handler would have done.
    let session = manager.create()?;
    session.set_user_id(Some(7));
    session.save().await?;
    let id = session.id().to_string();
    println!("session {id}: report_ready = {}", session.report_ready());

    // The background task gets only the id.
    let task_manager = manager.clone();
    let task_id = id.clone();
    let found = tokio::spawn(async move { mark_report_ready(&task_manager, &task_id).await })
        .await
        .map_err(|e| SessionError::Store(sessionkit::store::StoreError::backend(e)))??;
    println!("background task found the session: {found}");

    if let Some(again) = manager.load_by_id(&id).await? {
        println!(
            "session {id}: report_ready = {}, task_runs = {}",
            again.report_ready(),
            again.task_runs()
        );
    }
    Ok(())
}
