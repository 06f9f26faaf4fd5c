//! PAR in front of any existing authorization server, over HTTP (feature `proxy`).
//!
//! A [`ParLayer`](crate::ParLayer) over [`Forward`], a streaming reverse proxy to one upstream
//! origin: the layer answers the PAR endpoint and swaps `client_id` + `request_uri` at the
//! authorization endpoint; every other request (login and consent pages, token, userinfo, JWKS,
//! static files) passes through to the upstream unchanged. The upstream never learns that PAR
//! exists. The `par-proxy` binary is this module plus its command line ([`ProxyFlags`]).
//!
//! * [`Forward`]: the forwarder, a tower `Service` usable as the layer's inner service.
//! * [`merge_discovery`] and [`par_members`]: the upstream's discovery document with the layer's
//!   members merged in, which [`Forward::merge_discovery`] serves at the well-known paths.
//! * [`ProxyFlags`] and [`Proxy`]: `par-proxy`'s flags, its start-up (the upstream's discovery,
//!   retried) and its serving loop.
//!
//! The swapped authorization request reaches the upstream as the layer rebuilt it: the query of a
//! GET, or a POST form when it is too long for a URI
//! ([`ParLayerBuilder::long_requests_as_post`](crate::ParLayerBuilder::long_requests_as_post),
//! which `par-proxy` turns on).
//!
//! Signed request objects: when the upstream's discovery says `request_parameter_supported:
//! true`, the proxy turns on
//! [`ParLayerBuilder::forward_request_objects`](crate::ParLayerBuilder::forward_request_objects),
//! so a pushed `request` JWT reaches the
//! upstream with the swapped request (RFC 9101 §6.3), for upstreams that require signed request
//! objects themselves. A client registered with `"forward_request_object": false` is exempt.

mod body;
mod discovery;
mod flags;
mod forward;
mod headers;
mod pool;
mod tls;

pub use self::{
    body::ProxyBody,
    discovery::{merge_discovery, par_members, DiscoveryError},
    flags::{Proxy, ProxyFlags},
    forward::{Forward, ForwardBuilder, ForwardFuture},
};
