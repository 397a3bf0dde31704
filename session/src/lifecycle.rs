//! The session lifecycle: the manager that begins, loads and creates
//! sessions ([`manager`]), the request's session handle ([`session`]), and
//! the commit that saves it. [`SessionManager`](manager::SessionManager)
//! and [`Session`](session::Session) name each other
//! (`SessionManager::create` gives a `Session`, `Session::manager` its
//! manager), so they share this layer; every other arrow out of it points
//! down (ARCHITECTURE.md, "Module layers").

mod commit;
mod group;
pub(crate) mod manager;
pub(crate) mod session;
mod state;
