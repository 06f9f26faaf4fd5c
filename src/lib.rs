//! tower-par: OAuth 2.0 Pushed Authorization Requests (RFC 9126) as a tower layer.
#![forbid(unsafe_code)]

pub mod store;

#[cfg(feature = "jwt")]
pub(crate) mod jwt;
#[cfg(feature = "jwt")]
pub use jwt::{ClientKeys, KeyError};
