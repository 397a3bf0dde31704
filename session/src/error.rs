//! The error every session operation can return.

use crate::data::EncodeError;
use crate::id::{GenerateError, InvalidId};
use crate::store::StoreError;

/// Why a session could not be loaded, changed or saved.
///
/// Integrations answer clients with an opaque status and log this with its
/// cause; see each variant for what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed; nothing was saved.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No new session id could be made.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// A field's value could not be encoded; nothing was saved.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The encoded session is larger than `maxSessionBytes`; nothing was saved.
    #[error("the session would be {size} bytes encoded, over maxSessionBytes ({limit}); nothing was saved: store less in the session or raise maxSessionBytes")]
    TooLarge {
        /// The encoded size the save would have produced.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A session id given to the store pattern is malformed.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
}
