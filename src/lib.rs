//! tower-par: OAuth 2.0 Pushed Authorization Requests (RFC 9126) as a tower layer.
#![forbid(unsafe_code)]

pub mod store;
