//! The connector to the upstream: plain TCP, or rustls with the system's roots and an optional
//! private CA.

use std::{sync::Arc, time::Duration};

use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls_pki_types::{pem::PemObject as _, CertificateDer};

use super::forward::Connector;
use crate::error::ConfigError;

/// Past this a TCP connect attempt is given up (the response-head timeout may be longer).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn connector(https: bool, ca_pem: Option<&[u8]>) -> Result<Connector, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        setting: "upstream_ca",
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let native = rustls_native_certs::load_native_certs();
        for err in &native.errors {
            tracing::warn!(error = %err, "a system root certificate could not be loaded");
        }
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(pem) = ca_pem {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(invalid("no CERTIFICATE in the PEM text".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| invalid(format!("unusable CA certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}
