//! TLS for `sslmode=require` URLs (feature `postgres-tls`): a rustls
//! connector that verifies the server's certificate and host name against
//! the system's root certificates, or only against the one the builder was
//! given.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::PostgresConfigError;

/// The connector: trusting only `root_pem` when given, else the system's
/// trust store.
pub(super) fn connector(root_pem: Option<&[u8]>) -> Result<MakeRustlsConnect, PostgresConfigError> {
    let mut roots = RootCertStore::empty();
    match root_pem {
        Some(pem) => {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    PostgresConfigError::Tls(format!(
                        "the root certificate is not valid PEM ({e}); pass the CA's certificate file as it is"
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    PostgresConfigError::Tls(format!("the root certificate was refused: {e}"))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(PostgresConfigError::Tls(
                    "the root certificate holds no PEM certificate; pass the CA's certificate file as it is".into(),
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(PostgresConfigError::Tls(
                    "no root certificate found in the system's trust store; install ca-certificates or use tls_root_certificate".into(),
                ));
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PostgresConfigError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_root_certificates_are_clear_errors() {
        for pem in [&b"not a certificate"[..], b""] {
            match connector(Some(pem)) {
                Err(PostgresConfigError::Tls(why)) => assert!(why.contains("PEM"), "{why}"),
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("accepted"),
            }
        }
    }
}
