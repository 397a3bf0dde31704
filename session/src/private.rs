//! Support paths for `#[derive(SessionData)]`. Not public API: generated code
//! names everything through here so it works with renamed dependencies and
//! under `#![no_implicit_prelude]`.

pub use std::borrow::Cow;
pub use std::clone::Clone;
pub use std::default::Default;
pub use std::future::Future;
pub use std::marker::{PhantomData, Send, Sync};
pub use std::ops::{Fn, FnOnce};
pub use std::option::Option::{self, None, Some};
pub use std::result::Result::{self, Err, Ok};
pub use std::vec::Vec;

pub use crate::error::SessionError;

pub use crate::data::{
    decode_value, encode_value, DecodeError, EncodeError, Field, FieldInfo, HeaderSpec,
    SessionData, ToHeaderValue,
};
pub use crate::lifecycle::session::{is_reserved_name, Session, RESERVED_NAMES};
pub use crate::principal::ToPrincipalKey;

/// What the accessors need of a stored field's type: a getter clones, and
/// `take_*` / `remove_*` put the default back.
#[diagnostic::on_unimplemented(
    message = "session field type `{Self}` must implement `Clone` and `Default`",
    label = "the accessors `#[derive(SessionData)]` generates need `Clone + Default` here",
    note = "implement or derive `Clone` and `Default` for it, or keep the field out of the store with `#[session(skip)]`"
)]
pub trait FieldValue: Clone + Default + Send + Sync + 'static {}

impl<T: Clone + Default + Send + Sync + 'static> FieldValue for T {}

/// Fails to compile, at the field's type, unless `T: Clone + Default`.
pub const fn assert_field_value<T: FieldValue>() {}

/// Renders a field that has no `#[header]` but may be named by a runtime
/// header map. Method resolution picks [`HeaderViaTrait`] when the field's
/// type implements [`ToHeaderValue`] and [`HeaderFallback`] otherwise:
/// `(&HeaderProbe(&field)).__sessionkit_header_value()`.
#[derive(Debug)]
pub struct HeaderProbe<'a, T: ?Sized>(pub &'a T);

/// The [`HeaderProbe`] path for renderable types.
pub trait HeaderViaTrait<'a> {
    /// The value rendered by [`ToHeaderValue`].
    fn __sessionkit_header_value(&self) -> Option<Cow<'a, str>>;
}

impl<'a, T: ToHeaderValue + ?Sized> HeaderViaTrait<'a> for HeaderProbe<'a, T> {
    fn __sessionkit_header_value(&self) -> Option<Cow<'a, str>> {
        self.0.to_header_value()
    }
}

/// The [`HeaderProbe`] path for other types: never a header.
pub trait HeaderFallback<'a> {
    /// Always `None`.
    fn __sessionkit_header_value(&self) -> Option<Cow<'a, str>>;
}

impl<'a, T: ?Sized> HeaderFallback<'a> for &HeaderProbe<'a, T> {
    fn __sessionkit_header_value(&self) -> Option<Cow<'a, str>> {
        None
    }
}

/// Whether a field type implements [`ToHeaderValue`], decided the same way:
/// `(&CapableProbe::<T>::new()).__sessionkit_header_capable()`.
#[derive(Debug)]
pub struct CapableProbe<T: ?Sized>(PhantomData<fn() -> *const T>);

impl<T: ?Sized> Default for CapableProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ?Sized> CapableProbe<T> {
    /// A probe for `T`.
    #[must_use]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// The [`CapableProbe`] path for renderable types.
pub trait CapableViaTrait {
    /// `true`.
    fn __sessionkit_header_capable(&self) -> bool;
}

impl<T: ToHeaderValue + ?Sized> CapableViaTrait for CapableProbe<T> {
    fn __sessionkit_header_capable(&self) -> bool {
        true
    }
}

/// The [`CapableProbe`] path for other types.
pub trait CapableFallback {
    /// `false`.
    fn __sessionkit_header_capable(&self) -> bool;
}

impl<T: ?Sized> CapableFallback for &CapableProbe<T> {
    fn __sessionkit_header_capable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Opaque;

    #[test]
    #[allow(clippy::needless_borrow)] // the borrow is what selects the impl
    fn probes_pick_the_trait_when_it_is_implemented() {
        let n = 5u16;
        assert_eq!(
            (&HeaderProbe(&n)).__sessionkit_header_value().as_deref(),
            Some("5")
        );
        assert_eq!((&HeaderProbe(&Opaque)).__sessionkit_header_value(), None);
        assert!((&CapableProbe::<Option<String>>::new()).__sessionkit_header_capable());
        assert!(!(&CapableProbe::<Vec<String>>::new()).__sessionkit_header_capable());
        assert!(!(&CapableProbe::<Opaque>::new()).__sessionkit_header_capable());
    }
}
