//! The field codec and field metadata behind [`SessionData`]: what a
//! hand-written `SessionData` impl (or a store that decodes fields) uses.
//! `#[derive(SessionData)]` writes all of this for you.
//!
//! ```
//! use sessionkit::codec::{decode_value, encode_value, DecodeError, EncodeError, FieldInfo};
//! use sessionkit::SessionData;
//!
//! #[derive(Default)]
//! struct Visits {
//!     count: u32,
//! }
//!
//! impl SessionData for Visits {
//!     const FIELDS: &'static [FieldInfo] = &[FieldInfo::new("count", "count")];
//!     fn encode_field(&self, _: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
//!         encode_value(&self.count, out)
//!     }
//!     fn decode_field(&mut self, _: usize, bytes: &[u8]) -> Result<(), DecodeError> {
//!         self.count = decode_value(bytes)?;
//!         Ok(())
//!     }
//!     fn reset_field(&mut self, _: usize) {
//!         self.count = 0;
//!     }
//! }
//!
//! let mut out = Vec::new();
//! Visits { count: 3 }.encode_field(0, &mut out).unwrap();
//! let mut back = Visits::default();
//! back.decode_field(0, &out).unwrap();
//! assert_eq!(back.count, 3);
//! ```
//!
//! [`SessionData`]: crate::SessionData

pub use crate::data::{
    decode_value, encode_value, CodecCause, DecodeError, EncodeError, Field, FieldInfo, HeaderSpec,
    ToHeaderValue,
};
