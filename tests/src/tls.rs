//! TLS for end-to-end tests: a throw-away P-256 PKI and a TLS 1.3 terminating proxy that
//! puts the mock server behind `https://`.
//!
//! The client under test (embedded-tls) speaks TLS 1.3 only, with P-256 and
//! AES-128-GCM, and checks the server name against the certificate's CN, so the generated
//! server certificate carries the host name both as CN and as SAN.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

/// A certificate authority and a server certificate it signed.
#[derive(Clone)]
pub struct TestPki {
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, DER.
    pub server_cert_der: Vec<u8>,
    /// The server's private key, PKCS#8 DER.
    pub server_key_der: Vec<u8>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("ca_der_len", &self.ca_der.len())
            .finish_non_exhaustive()
    }
}

impl TestPki {
    /// A fresh ECDSA P-256 CA and a server certificate for `host` (CN and SAN).
    pub fn generate(host: &str) -> Result<TestPki, rcgen::Error> {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "steadyllm test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca, ca_key);

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(vec![host.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, host);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(TestPki {
            ca_der: ca_cert.der().to_vec(),
            ca_pem: ca_cert.pem(),
            server_cert_der: cert.der().to_vec(),
            server_key_der: key.serialize_der(),
        })
    }
}

/// A TLS 1.3 server on loopback that forwards each connection's plaintext to `upstream`.
pub struct TlsProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// Listens on `bind` (port 0 for any) on the current tokio runtime.
    pub async fn start(
        bind: SocketAddr,
        upstream: SocketAddr,
        pki: &TestPki,
    ) -> io::Result<TlsProxy> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(pki.server_cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone())),
            )
            .map_err(io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A failed handshake (wrong CA on the client side) just ends here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Ok(TlsProxy { addr, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
