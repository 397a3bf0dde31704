//! Support paths for `#[derive(SessionData)]`. Not public API: generated code
//! names everything through here so it works with renamed dependencies and
//! under `#![no_implicit_prelude]`.

pub use std::borrow::Cow;
pub use std::option::Option::{self, None, Some};
pub use std::result::Result::{self, Err, Ok};
pub use std::vec::Vec;

pub use crate::data::{
    decode_value, encode_value, DecodeError, EncodeError, Field, FieldInfo, HeaderSpec,
    SessionData, ToHeaderValue,
};
pub use crate::session::Session;
