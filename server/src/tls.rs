//! TLS on the one port: the certificate chain and key (PEM) become a
//! rustls server configuration offering HTTP/2 and HTTP/1.1, for native
//! gRPC, grpc-web and the web app alike. The crypto provider is named
//! here (ring), never taken from the process default, so a process that
//! links several providers (the S3 SDK brings its own) still starts.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The server configuration for `cert` (a PEM chain, leaf first) and
/// `key` (a PEM private key).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read the TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the TLS key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the TLS certificate and key do not fit: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_or_garbage_files_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a pem file").unwrap();
        let e = super::server_config(&garbage, &garbage).unwrap_err();
        assert!(e.contains("garbage.pem"), "{e}");
        let e = super::server_config(&dir.path().join("absent.pem"), &garbage).unwrap_err();
        assert!(e.contains("absent.pem"), "{e}");
    }
}
