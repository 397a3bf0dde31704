//! actix-web integration for sessionkit (being built).
