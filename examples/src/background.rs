//! Fiber's store pattern: a background task loads a session by id, changes
//! it and saves it, with no request in sight.

use serde::{Deserialize, Serialize};
use sessionkit::{SessionData, SessionError, SessionManager};

/// A session a background job reports into.
#[derive(SessionData, Default, Debug, Clone, Serialize, Deserialize)]
pub struct JobSession {
    /// The user who asked for the report.
    pub user_id: Option<u64>,
    /// Set by the background task when the report is ready.
    pub report_ready: bool,
    /// Background runs so far.
    pub task_runs: u32,
}

/// What the background task does: load by id, change, save. Returns whether
/// the session still existed.
///
/// # Errors
/// [`SessionError`] when the id is malformed or the store fails.
pub async fn mark_report_ready(
    manager: &SessionManager<JobSession>,
    session_id: &str,
) -> Result<bool, SessionError> {
    let Some(session) = manager.load_by_id(session_id).await? else {
        return Ok(false);
    };
    session.set_report_ready(true);
    session.update_task_runs(|n| *n += 1);
    // No middleware here: saving is explicit.
    session.save().await?;
    Ok(true)
}
