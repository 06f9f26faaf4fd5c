//! Reverse-proxy header handling (RFC 9110 §7.6): hop-by-hop fields out, the `X-Forwarded-*`
//! chain and `Forwarded` (RFC 7239) in.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Mutex,
};

use bytes::{BufMut as _, BytesMut};
use http::{
    header::{self, HeaderName},
    HeaderMap, HeaderValue,
};

/// RFC 9110 §7.6.1 names these, plus the proxy-authentication fields and `Proxy-Connection`,
/// which older clients still send.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

fn is_hop_by_hop(name: &HeaderName) -> bool {
    // A match on the text: cheaper than nine `HeaderName` comparisons for every field.
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes the hop-by-hop fields and every field the `Connection` header names.
///
/// The common request carries none of them: one pass over the names finds that out and the map
/// is left alone.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // The names listed in Connection go too (RFC 9110 §7.6.1); collected before the removal.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// What the proxy knows of the connection a request came on: the values it appends, made once
/// per connection ([`Forward::for_peer`](super::Forward::for_peer)) and shared by every clone of
/// that connection's service.
#[derive(Debug)]
pub(crate) struct Peer {
    /// `X-Forwarded-For`: the client's address, when the server told us.
    forwarded_for: Option<HeaderValue>,
    /// The `for=` node of `Forwarded` (RFC 7239 §6): the address, or `unknown`.
    node: String,
    /// The last `Host` seen on this connection and the `Forwarded` element made from it: a
    /// keep-alive connection sends the same `Host` every time.
    cached: Mutex<Option<(HeaderValue, HeaderValue)>>,
}

impl Peer {
    pub(crate) fn new(addr: Option<SocketAddr>) -> Self {
        let ip = addr.map(|a| a.ip());
        let node = match ip {
            Some(IpAddr::V4(v4)) => v4.to_string(),
            // RFC 7239 §6: an IPv6 node is bracketed, and then the value must be quoted.
            Some(IpAddr::V6(v6)) => format!("\"[{v6}]\""),
            None => "unknown".to_owned(),
        };
        Self {
            forwarded_for: ip.map(|ip| {
                HeaderValue::from_str(&ip.to_string()).expect("an IP address is a header value")
            }),
            node,
            cached: Mutex::new(None),
        }
    }

    /// Appends `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` to
    /// whatever chain the request already carries.
    pub(crate) fn append_forwarded(&self, headers: &mut HeaderMap, proto: &'static str) {
        // Room for the four fields at once: the map of a parsed request is sized to its fields.
        headers.reserve(4);
        let host = headers.get(header::HOST).cloned();
        if let Some(ip) = &self.forwarded_for {
            append(headers, &X_FORWARDED_FOR, ip.clone());
        }
        append(headers, &X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        if let Some(host) = &host {
            append(headers, &X_FORWARDED_HOST, host.clone());
        }
        let element = self.forwarded_element(host, proto);
        append(headers, &header::FORWARDED, element);
    }

    fn forwarded_element(&self, host: Option<HeaderValue>, proto: &'static str) -> HeaderValue {
        // One connection's requests come one after the other: the lock is never contended.
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some((seen, element)), Some(host)) = (&*cached, &host) {
            if seen == host {
                return element.clone();
            }
        }
        let mut value = BytesMut::with_capacity(self.node.len() + 32);
        value.put_slice(b"for=");
        value.put_slice(self.node.as_bytes());
        if let Some(host) = &host {
            // A host with a port has a ':', which a token cannot hold: always a quoted string.
            value.put_slice(b";host=\"");
            for &b in host.as_bytes() {
                if b == b'"' || b == b'\\' {
                    value.put_u8(b'\\');
                }
                value.put_u8(b);
            }
            value.put_u8(b'"');
        }
        value.put_slice(b";proto=");
        value.put_slice(proto.as_bytes());
        let element = HeaderValue::from_maybe_shared(value.freeze())
            .expect("built from header-safe bytes only");
        if let Some(host) = host {
            *cached = Some((host, element.clone()));
        }
        element
    }
}

/// Adds `value` to the list in `name`: a new field when there is none, else one field with the
/// existing values and this one, comma-separated (one line, as most servers read only the first).
fn append(headers: &mut HeaderMap, name: &HeaderName, value: HeaderValue) {
    match headers.entry(name) {
        header::Entry::Vacant(entry) => {
            entry.insert(value);
        }
        header::Entry::Occupied(mut entry) => {
            let mut joined = BytesMut::new();
            for existing in entry.iter() {
                joined.put_slice(existing.as_bytes());
                joined.put_slice(b", ");
            }
            joined.put_slice(value.as_bytes());
            if let Ok(joined) = HeaderValue::from_maybe_shared(joined.freeze()) {
                entry.insert(joined);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (n, v) in pairs {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn the_name_match_and_the_list_of_hop_by_hop_fields_agree() {
        assert!(HOP_BY_HOP.iter().all(is_hop_by_hop));
        for name in [
            header::HOST,
            header::COOKIE,
            header::FORWARDED,
            X_FORWARDED_FOR.clone(),
        ] {
            assert!(!is_hop_by_hop(&name), "{name}");
        }
    }

    #[test]
    fn hop_by_hop_fields_and_the_ones_connection_names_are_removed() {
        let mut headers = map(&[
            ("host", "as.example"),
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("transfer-encoding", "chunked"),
            ("cookie", "a=1"),
        ]);
        remove_hop_by_hop(&mut headers);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["host", "cookie"]);
    }

    #[test]
    fn forwarded_fields_are_appended_to_an_existing_chain() {
        let peer = Peer::new(Some("192.0.2.7:5000".parse().unwrap()));
        let mut headers = map(&[
            ("host", "as.example:4000"),
            ("x-forwarded-for", "203.0.113.1"),
            ("forwarded", "for=203.0.113.1;proto=https"),
        ]);
        peer.append_forwarded(&mut headers, "http");
        assert_eq!(headers["x-forwarded-for"], "203.0.113.1, 192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "as.example:4000");
        assert_eq!(
            headers["forwarded"],
            "for=203.0.113.1;proto=https, for=192.0.2.7;host=\"as.example:4000\";proto=http"
        );
        // The second request of the connection reuses the element made for the first.
        let mut again = map(&[("host", "as.example:4000")]);
        peer.append_forwarded(&mut again, "http");
        assert_eq!(
            again["forwarded"],
            "for=192.0.2.7;host=\"as.example:4000\";proto=http"
        );
    }

    #[test]
    fn ipv6_and_unknown_peers_are_written_as_rfc_7239_nodes() {
        let mut headers = map(&[]);
        Peer::new(Some("[2001:db8::1]:443".parse().unwrap()))
            .append_forwarded(&mut headers, "http");
        assert_eq!(headers["forwarded"], "for=\"[2001:db8::1]\";proto=http");
        assert_eq!(headers["x-forwarded-for"], "2001:db8::1");
        let mut headers = map(&[]);
        Peer::new(None).append_forwarded(&mut headers, "http");
        assert_eq!(headers["forwarded"], "for=unknown;proto=http");
        assert!(headers.get("x-forwarded-for").is_none());
    }
}
