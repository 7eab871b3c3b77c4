//! TLS trust for `rediss://`: a rustls client that trusts the CAs of a PEM file.

use std::{path::Path, sync::Arc};

use fred::types::config::TlsConnector;
use rustls_pki_types::{CertificateDer, pem::PemObject};

use crate::BackplaneError;

/// A connector that trusts exactly the CA certificates in the PEM file at `path`.
pub fn connector_trusting(path: &Path) -> Result<TlsConnector, BackplaneError> {
    let bad = |detail: String| {
        BackplaneError::Config(format!("TLS CA file {}: {detail}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|e| bad(e.to_string()))?;
        roots.add(certificate).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    // The provider is named rather than taken from process defaults, which are
    // ambiguous when more than one crypto backend is compiled in.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(config))
}
