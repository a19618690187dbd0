//! TLS for end-to-end tests: throw-away PKIs shaped like the chains real servers present, and a
//! TLS 1.3 terminating proxy (rustls) that puts the mock server behind `https://`.
//!
//! Every chain is three certificates deep (root → issuing CA → leaf, the server sending leaf
//! and issuing CA), as Let's Encrypt, Google Trust Services and the cloud providers serve them.
//! The proxy records each connection's first TLS record (the ClientHello), so tests can look at
//! the client's key share.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm,
};
use rsa::pkcs8::EncodePrivateKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

/// The chain shapes of the TLS matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainShape {
    /// ECDSA P-256 all the way (root, issuing CA, leaf).
    P256,
    /// A P-384 root (GTS R4, ISRG X2) with a P-256 issuing CA and leaf.
    P384Root,
    /// The Let's Encrypt shape: RSA-4096 root → RSA-2048 issuing CA → ECDSA P-256 leaf.
    RsaRootEcdsaLeaf,
    /// RSA everywhere (RSA-4096 root → RSA-2048 CA → RSA-2048 leaf; the server's handshake
    /// signature is then RSA-PSS).
    AllRsa,
    /// The P-256 chain, with the client given a bundle of three roots, the right one third.
    BundleRightRootThird,
}

impl ChainShape {
    /// Every shape.
    pub const ALL: [ChainShape; 5] = [
        ChainShape::P256,
        ChainShape::P384Root,
        ChainShape::RsaRootEcdsaLeaf,
        ChainShape::AllRsa,
        ChainShape::BundleRightRootThird,
    ];

    /// A name for command lines (`mock-server --tls NAME`).
    pub fn name(self) -> &'static str {
        match self {
            ChainShape::P256 => "p256",
            ChainShape::P384Root => "p384-root",
            ChainShape::RsaRootEcdsaLeaf => "rsa-root-ecdsa-leaf",
            ChainShape::AllRsa => "all-rsa",
            ChainShape::BundleRightRootThird => "bundle",
        }
    }

    /// The shape of that name.
    pub fn from_name(s: &str) -> Option<ChainShape> {
        ChainShape::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// What is wrong with a chain built to be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadChain {
    /// A good chain for another host name.
    WrongHost,
    /// A good chain under a root the client was not given.
    UntrustedRoot,
    /// A leaf that expired in 2020.
    ExpiredLeaf,
}

impl BadChain {
    /// Every kind.
    pub const ALL: [BadChain; 3] = [
        BadChain::WrongHost,
        BadChain::UntrustedRoot,
        BadChain::ExpiredLeaf,
    ];

    /// A name for command lines.
    pub fn name(self) -> &'static str {
        match self {
            BadChain::WrongHost => "wrong-host",
            BadChain::UntrustedRoot => "untrusted-root",
            BadChain::ExpiredLeaf => "expired-leaf",
        }
    }

    /// The kind of that name.
    pub fn from_name(s: &str) -> Option<BadChain> {
        BadChain::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// A server's chain and key, and the roots a client should trust for it.
#[derive(Clone)]
pub struct TestPki {
    /// The roots to give the client (DER), in the order given.
    pub roots_der: Vec<Vec<u8>>,
    /// The same roots as one PEM bundle.
    pub roots_pem: String,
    /// What the server sends: leaf first, then its issuing CA.
    pub chain_der: Vec<Vec<u8>>,
    /// The leaf's private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("roots", &self.roots_der.len())
            .field("chain", &self.chain_der.len())
            .finish_non_exhaustive()
    }
}

/// RSA keys take seconds to generate: one set per test process.
struct RsaKeys {
    root_4096: Vec<u8>,
    ca_2048: Vec<u8>,
    leaf_2048: Vec<u8>,
}

fn rsa_keys() -> &'static RsaKeys {
    static KEYS: OnceLock<RsaKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let gen_key = |bits| {
            let k = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, bits).expect("rsa keygen");
            k.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec()
        };
        RsaKeys {
            root_4096: gen_key(4096),
            ca_2048: gen_key(2048),
            leaf_2048: gen_key(2048),
        }
    })
}

enum Key {
    Ec(&'static SignatureAlgorithm),
    Rsa(fn(&'static RsaKeys) -> &'static [u8]),
}

fn key(k: Key) -> Result<KeyPair, rcgen::Error> {
    match k {
        Key::Ec(alg) => KeyPair::generate_for(alg),
        Key::Rsa(pick) => KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pick(rsa_keys()).to_vec()),
            &rcgen::PKCS_RSA_SHA256,
        ),
    }
}

fn ca_params(name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.distinguished_name
        .push(DnType::OrganizationName, "steadyllm test PKI");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

struct Built {
    root_der: Vec<u8>,
    root_pem: String,
    ca_der: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf_key: Vec<u8>,
}

fn build(
    host: &str,
    root: Key,
    ca: Key,
    leaf: Key,
    expired_leaf: bool,
) -> Result<Built, rcgen::Error> {
    let root_key = key(root)?;
    let root_params = ca_params("steadyllm test root")?;
    let root_cert = root_params.self_signed(&root_key)?;
    let root_issuer = Issuer::new(root_params, root_key);

    let ca_key = key(ca)?;
    let mut ca_p = ca_params("steadyllm test issuing CA")?;
    ca_p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_cert = ca_p.signed_by(&ca_key, &root_issuer)?;
    let ca_issuer = Issuer::new(ca_p, ca_key);

    let leaf_key = key(leaf)?;
    let mut lp = CertificateParams::new(vec![host.to_string()])?;
    lp.distinguished_name.push(DnType::CommonName, host);
    lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if expired_leaf {
        lp.not_before = rcgen::date_time_ymd(2019, 1, 1);
        lp.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let leaf_cert = lp.signed_by(&leaf_key, &ca_issuer)?;
    Ok(Built {
        root_der: root_cert.der().to_vec(),
        root_pem: root_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
        leaf_der: leaf_cert.der().to_vec(),
        leaf_key: leaf_key.serialize_der(),
    })
}

fn p256() -> Key {
    Key::Ec(&rcgen::PKCS_ECDSA_P256_SHA256)
}

impl TestPki {
    /// A P-256 chain for `host` (a DNS name or an IP literal).
    pub fn generate(host: &str) -> Result<TestPki, rcgen::Error> {
        TestPki::shape(ChainShape::P256, host)
    }

    /// A chain of `shape` for `host`.
    pub fn shape(shape: ChainShape, host: &str) -> Result<TestPki, rcgen::Error> {
        let b = match shape {
            ChainShape::P256 | ChainShape::BundleRightRootThird => {
                build(host, p256(), p256(), p256(), false)?
            }
            ChainShape::P384Root => build(
                host,
                Key::Ec(&rcgen::PKCS_ECDSA_P384_SHA384),
                p256(),
                p256(),
                false,
            )?,
            ChainShape::RsaRootEcdsaLeaf => build(
                host,
                Key::Rsa(|k| &k.root_4096),
                Key::Rsa(|k| &k.ca_2048),
                p256(),
                false,
            )?,
            ChainShape::AllRsa => build(
                host,
                Key::Rsa(|k| &k.root_4096),
                Key::Rsa(|k| &k.ca_2048),
                Key::Rsa(|k| &k.leaf_2048),
                false,
            )?,
        };
        let mut pki = TestPki {
            roots_der: vec![b.root_der],
            roots_pem: b.root_pem,
            chain_der: vec![b.leaf_der, b.ca_der],
            key_der: b.leaf_key,
        };
        if shape == ChainShape::BundleRightRootThird {
            // Two unrelated roots first (one RSA, one P-384), then the right one.
            let a = build(host, Key::Rsa(|k| &k.root_4096), p256(), p256(), false)?;
            let c = build(
                host,
                Key::Ec(&rcgen::PKCS_ECDSA_P384_SHA384),
                p256(),
                p256(),
                false,
            )?;
            pki.roots_der.insert(0, c.root_der);
            pki.roots_der.insert(0, a.root_der);
            pki.roots_pem = format!("{}{}{}", a.root_pem, c.root_pem, pki.roots_pem);
        }
        Ok(pki)
    }

    /// A P-256 chain that a client trusting [`TestPki::roots_der`] must refuse for `host`.
    pub fn bad(kind: BadChain, host: &str) -> Result<TestPki, rcgen::Error> {
        match kind {
            BadChain::WrongHost => TestPki::generate("wrong.example.com"),
            BadChain::UntrustedRoot => {
                let served = TestPki::generate(host)?;
                let other = TestPki::generate(host)?;
                Ok(TestPki {
                    roots_der: other.roots_der,
                    roots_pem: other.roots_pem,
                    ..served
                })
            }
            BadChain::ExpiredLeaf => {
                let b = build(host, p256(), p256(), p256(), true)?;
                Ok(TestPki {
                    roots_der: vec![b.root_der],
                    roots_pem: b.root_pem,
                    chain_der: vec![b.leaf_der, b.ca_der],
                    key_der: b.leaf_key,
                })
            }
        }
    }
}

/// The `key_share` entries' keys of a ClientHello record, or `None` if it is not one.
pub fn client_hello_key_shares(record: &[u8]) -> Option<Vec<Vec<u8>>> {
    let take = |b: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        let (h, t) = b.split_at_checked(n)?;
        *b = t;
        Some(h.to_vec())
    };
    let u16_at = |v: &[u8]| -> usize { (usize::from(v[0]) << 8) | usize::from(v[1]) };
    let mut b = record;
    let header = take(&mut b, 5)?;
    if header[0] != 22 {
        return None;
    }
    let hs = take(&mut b, 4)?;
    if hs[0] != 1 {
        return None;
    }
    take(&mut b, 2 + 32)?; // version, random
    let sid = take(&mut b, 1)?[0] as usize;
    take(&mut b, sid)?;
    let cs = u16_at(&take(&mut b, 2)?);
    take(&mut b, cs)?;
    let comp = take(&mut b, 1)?[0] as usize;
    take(&mut b, comp)?;
    let ext_len = u16_at(&take(&mut b, 2)?);
    let mut exts = &take(&mut b, ext_len)?[..];
    while !exts.is_empty() {
        let h = take(&mut exts, 4)?;
        let (ty, len) = (u16_at(&h[..2]), u16_at(&h[2..]));
        let body = take(&mut exts, len)?;
        if ty == 51 {
            let mut shares = &body[2..];
            let mut out = Vec::new();
            while !shares.is_empty() {
                let h = take(&mut shares, 4)?;
                out.push(take(&mut shares, u16_at(&h[2..]))?);
            }
            return Some(out);
        }
    }
    None
}

/// A TLS 1.3 server on loopback (or a namespace address) that forwards each connection's
/// plaintext to `upstream`.
pub struct TlsProxy {
    addr: SocketAddr,
    hellos: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// Listens on `bind` (port 0 for any) on the current tokio runtime, presenting `pki`'s chain.
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
                pki.chain_der
                    .iter()
                    .map(|c| CertificateDer::from(c.clone()))
                    .collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone())),
            )
            .map_err(io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let hellos = Arc::new(Mutex::new(Vec::new()));
        let seen = hellos.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    // Peek the first record (the ClientHello) without consuming it.
                    let mut head = [0u8; 5];
                    if tcp.peek(&mut head).await.is_ok() {
                        let len = 5 + ((usize::from(head[3]) << 8) | usize::from(head[4]));
                        let mut buf = vec![0u8; len];
                        for _ in 0..50 {
                            match tcp.peek(&mut buf).await {
                                Ok(n) if n >= len => break,
                                Ok(_) => {
                                    tokio::time::sleep(std::time::Duration::from_millis(5)).await
                                }
                                Err(_) => break,
                            }
                        }
                        if let Ok(mut s) = seen.lock() {
                            s.push(buf);
                        }
                    }
                    // A failed handshake (the client refused the chain) just ends here.
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
        Ok(TlsProxy { addr, hellos, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first TLS record of every connection so far (ClientHellos), in order.
    pub fn client_hellos(&self) -> Vec<Vec<u8>> {
        self.hellos.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
