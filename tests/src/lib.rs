//! Shared helpers for the acceptance suite.
