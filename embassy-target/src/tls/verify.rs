//! Server authentication: the chain the server sent is built up to one of the caller's trust
//! anchors, every signature on the way is checked, each certificate's validity period is
//! checked against the time policy, and the host name is matched against the leaf's
//! subjectAltName. Then the server's handshake signature is checked with the leaf's key.
//!
//! What is checked, in this order (the first failure is the one reported):
//! 1. the chain: leaf ← up to [`MAX_INTERMEDIATES`] issuing CAs (in any order, extras ignored)
//!    ← a trust anchor, chosen by issuer name and confirmed by its signature; issuing CAs must
//!    be CAs (basicConstraints), may sign certificates (keyUsage) and respect pathLen;
//! 2. validity: see [`TimePolicy`];
//! 3. the leaf: not a CA (unless the leaf itself is one of the anchors: a pinned self-signed
//!    certificate), `digitalSignature` allowed when keyUsage is present, server
//!    authentication allowed when extKeyUsage is present, no unknown critical extension;
//! 4. the name: DNS names against subjectAltName dNSName entries (a `*.` wildcard matches one
//!    whole left-most label, RFC 6125 §6.4.3), IP literals against iPAddress entries; the
//!    subject's CN is not used (as browsers do).
//!
//! Not checked: revocation (no OCSP/CRL on a microcontroller), name constraints (a CA that
//! carries them is refused rather than trusted beyond them), the anchors' own validity.

use embedded_tls::{Aes128GcmSha256, CertificateEntryRef, CertificateRef, TlsError, TlsVerifier};
use embedded_tls::{CertificateVerifyRef, SignatureScheme};
use sha2::Digest;
use steadyllm_core::call::CertificateFault;

use super::signature;
use super::x509::{Certificate, Der, Hash, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, PublicKey};
use super::x509::{SigAlg, tag};

type Result<T> = core::result::Result<T, CertificateFault>;

/// Issuing CAs followed between the leaf and an anchor.
pub const MAX_INTERMEDIATES: usize = 4;

/// The root certificates a server's chain must lead to.
///
/// Build it from DER certificates: a list ([`TrustAnchors::from_der_list`]), or one buffer
/// holding any number of DER certificates back to back ([`TrustAnchors::from_der_bundle`],
/// which is also what [`decode_pem_bundle`](super::decode_pem_bundle) writes). Anchors are
/// chosen by issuer name, so their order does not matter. A certificate in the set that this
/// client cannot parse is skipped, not fatal.
#[derive(Clone, Copy)]
pub struct TrustAnchors<'a> {
    kind: Anchors<'a>,
}

#[derive(Clone, Copy)]
enum Anchors<'a> {
    List(&'a [&'a [u8]]),
    Bundle(&'a [u8]),
}

impl<'a> TrustAnchors<'a> {
    /// Anchors from a list of DER certificates.
    pub const fn from_der_list(certs: &'a [&'a [u8]]) -> Self {
        TrustAnchors {
            kind: Anchors::List(certs),
        }
    }

    /// Anchors from DER certificates stored back to back (one certificate is a bundle of one).
    pub const fn from_der_bundle(der: &'a [u8]) -> Self {
        TrustAnchors {
            kind: Anchors::Bundle(der),
        }
    }

    /// Calls `f` with each anchor's DER until it returns `true`.
    fn any(&self, mut f: impl FnMut(&[u8]) -> bool) -> bool {
        match self.kind {
            Anchors::List(l) => l.iter().any(|c| f(c)),
            Anchors::Bundle(b) => {
                let mut d = Der::new(b);
                while let Ok((tag::SEQUENCE, _, whole)) = d.read_any() {
                    if f(whole) {
                        return true;
                    }
                }
                false
            }
        }
    }

    /// How many anchors the set holds.
    pub fn len(&self) -> usize {
        let mut n = 0;
        self.any(|_| {
            n += 1;
            false
        });
        n
    }

    /// The set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl core::fmt::Debug for TrustAnchors<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TrustAnchors({} certificates)", self.len())
    }
}

/// What "now" is when validity periods are checked.
///
/// A device often boots without knowing the date. The policy: the build time of this crate is
/// a floor — the true time is never earlier — so a certificate that expired before the
/// firmware was built is refused even with no clock. When the caller gives the time
/// ([`TlsSettings::with_clock`](super::TlsSettings::with_clock), e.g. from SNTP or an RTC) and
/// it is not before the floor, it is used for both ends of every validity period; a clock that
/// reads earlier than the floor (an unset RTC) is ignored, and "not valid yet" cannot be
/// checked then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimePolicy {
    /// Seconds since 1970 that the true time is known to be past.
    pub floor: i64,
    /// The device's time, when it has one.
    pub now: Option<i64>,
}

impl TimePolicy {
    /// The build time as the floor, and the device's time if it has one.
    pub fn with_now(now: Option<u64>) -> TimePolicy {
        let floor = build_time();
        TimePolicy {
            floor,
            now: now
                .and_then(|n| i64::try_from(n).ok())
                .filter(|&n| n >= floor),
        }
    }

    fn check(&self, c: &Certificate<'_>) -> Result<()> {
        let now = self.now.unwrap_or(self.floor);
        if c.not_after < now {
            return Err(CertificateFault::Expired);
        }
        if self.now.is_some() && c.not_before > now {
            return Err(CertificateFault::NotYetValid);
        }
        Ok(())
    }
}

/// This crate's build time (seconds since 1970), written by `build.rs`.
pub fn build_time() -> i64 {
    let s = env!("STEADYLLM_BUILD_UNIX");
    s.bytes()
        .try_fold(0i64, |a, b| {
            b.is_ascii_digit()
                .then(|| a.saturating_mul(10).saturating_add(i64::from(b - b'0')))
        })
        .unwrap_or(0)
}

/// Verifies a chain (leaf first) for `host`; returns the leaf.
pub(crate) fn verify_chain<'c>(
    chain: &[&'c [u8]],
    anchors: &TrustAnchors<'_>,
    host: &str,
    time: &TimePolicy,
) -> Result<Certificate<'c>> {
    let leaf_der = chain.first().ok_or(CertificateFault::Malformed)?;
    let leaf = Certificate::parse(leaf_der)?;
    let mut current = leaf;
    let mut used = 0u32;
    let mut below = 0usize; // issuing CAs between `current` and the leaf
    let mut path = [leaf; MAX_INTERMEDIATES + 1];
    let mut path_len = 1;
    let mut pinned = false;
    loop {
        // Does an anchor issue `current`?
        let mut fault = CertificateFault::UnknownIssuer;
        let anchored = anchors.any(|a| {
            if path_len == 1 && a == *leaf_der {
                // The server's own certificate, trusted as it is (a self-hosted gateway's
                // self-signed certificate given as the root): pinned, whatever its CA flag.
                pinned = true;
                return true;
            }
            let Ok(anchor) = Certificate::parse(a) else {
                return false;
            };
            if anchor.subject != current.issuer {
                return false;
            }
            if anchor.path_len.is_some_and(|n| below > n) {
                fault = CertificateFault::BadUsage;
                return false;
            }
            match PublicKey::parse(anchor.spki).and_then(|k| {
                signature::verify(&k, current.sig_alg, current.tbs, current.signature)
            }) {
                Ok(()) => true,
                // Same name, other key: not this issuer (the chain is unknown, not forged).
                Err(CertificateFault::BadSignature) => false,
                Err(e) => {
                    fault = e;
                    false
                }
            }
        });
        if anchored {
            break;
        }
        // Does one of the server's other certificates?
        let mut next = None;
        for (i, der) in chain.iter().enumerate().skip(1) {
            if used & (1 << i.min(31)) != 0 {
                continue;
            }
            let Ok(ca) = Certificate::parse(der) else {
                continue;
            };
            if ca.subject != current.issuer {
                continue;
            }
            if !ca.is_ca
                || ca.key_usage.is_some_and(|ku| ku & KU_KEY_CERT_SIGN == 0)
                || ca.path_len.is_some_and(|n| below > n)
            {
                fault = CertificateFault::BadUsage;
                continue;
            }
            match PublicKey::parse(ca.spki).and_then(|k| {
                signature::verify(&k, current.sig_alg, current.tbs, current.signature)
            }) {
                Ok(()) => {
                    used |= 1 << i.min(31);
                    next = Some(ca);
                    break;
                }
                Err(CertificateFault::BadSignature) => {}
                Err(e) => fault = e,
            }
        }
        match next {
            Some(ca) if path_len <= MAX_INTERMEDIATES => {
                if let Some(slot) = path.get_mut(path_len) {
                    *slot = ca;
                }
                path_len += 1;
                below += 1;
                current = ca;
            }
            Some(_) => return Err(CertificateFault::BadUsage),
            None => return Err(fault),
        }
    }
    for c in path.iter().take(path_len) {
        time.check(c)?;
    }
    if (leaf.is_ca && !pinned)
        || !leaf.server_auth
        || leaf
            .key_usage
            .is_some_and(|ku| ku & KU_DIGITAL_SIGNATURE == 0)
    {
        return Err(CertificateFault::BadUsage);
    }
    if !name_matches(&leaf, host)? {
        return Err(CertificateFault::NameMismatch);
    }
    Ok(leaf)
}

/// The leaf's subjectAltName has an entry for `host`.
fn name_matches(leaf: &Certificate<'_>, host: &str) -> Result<bool> {
    let Some(san) = leaf.san else {
        return Ok(false);
    };
    let mut ip = [0u8; 16];
    let ip = parse_ip(host, &mut ip);
    let mut names = Der::new(san);
    while !names.is_empty() {
        let (t, v, _) = names.read_any()?;
        let hit = match (t, ip) {
            (0x82, None) => dns_name_matches(v, host.as_bytes()),
            (0x87, Some(addr)) => v == addr,
            _ => false,
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

/// An IP literal's bytes (4 or 16), or `None` for a DNS name.
fn parse_ip<'b>(host: &str, buf: &'b mut [u8; 16]) -> Option<&'b [u8]> {
    if let Ok(v4) = host.parse::<core::net::Ipv4Addr>() {
        let o = v4.octets();
        buf.get_mut(..4)?.copy_from_slice(&o);
        return buf.get(..4);
    }
    let v6 = host.parse::<core::net::Ipv6Addr>().ok()?;
    *buf = v6.octets();
    Some(&buf[..])
}

/// RFC 6125 §6.4: case-insensitive; a wildcard only as the whole left-most label of a name
/// with at least two more labels, matching exactly one non-empty label.
pub(crate) fn dns_name_matches(pattern: &[u8], host: &[u8]) -> bool {
    let host = host.strip_suffix(b".").unwrap_or(host);
    let pattern = pattern.strip_suffix(b".").unwrap_or(pattern);
    if host.is_empty() || pattern.is_empty() {
        return false;
    }
    match pattern.strip_prefix(b"*.") {
        Some(rest) => {
            if rest.contains(&b'*') || !rest.contains(&b'.') {
                return false;
            }
            match host.iter().position(|&b| b == b'.') {
                Some(dot) if dot > 0 => host
                    .get(dot + 1..)
                    .is_some_and(|h| h.eq_ignore_ascii_case(rest)),
                _ => false,
            }
        }
        None => !pattern.contains(&b'*') && pattern.eq_ignore_ascii_case(host),
    }
}

/// Largest SubjectPublicKeyInfo kept for the handshake signature (RSA-4096 with its header).
const LEAF_KEY_MAX: usize = 600;

/// embedded-tls's verifier hook: checks the chain when the server's Certificate message
/// arrives and the handshake signature when its CertificateVerify does, and remembers why it
/// refused.
pub(crate) struct Verifier<'a> {
    anchors: TrustAnchors<'a>,
    host: &'a str,
    time: TimePolicy,
    transcript: Option<sha2::Sha256>,
    leaf_spki: [u8; LEAF_KEY_MAX],
    leaf_spki_len: usize,
    /// Why the server was refused, when it was.
    pub fault: Option<CertificateFault>,
}

impl<'a> Verifier<'a> {
    pub fn new(anchors: TrustAnchors<'a>, host: &'a str, time: TimePolicy) -> Self {
        Verifier {
            anchors,
            host,
            time,
            transcript: None,
            leaf_spki: [0; LEAF_KEY_MAX],
            leaf_spki_len: 0,
            fault: None,
        }
    }

    fn refuse(&mut self, f: CertificateFault) -> TlsError {
        self.fault = Some(f);
        match f {
            CertificateFault::BadSignature => TlsError::InvalidSignature,
            _ => TlsError::InvalidCertificate,
        }
    }
}

impl TlsVerifier<Aes128GcmSha256> for Verifier<'_> {
    fn set_hostname_verification(&mut self, _hostname: &str) -> core::result::Result<(), TlsError> {
        // The host name was given at construction (the same one goes into the SNI).
        Ok(())
    }

    fn verify_certificate(
        &mut self,
        transcript: &sha2::Sha256,
        cert: CertificateRef<'_>,
    ) -> core::result::Result<(), TlsError> {
        let mut ders: [&[u8]; 16] = [&[]; 16];
        let mut n = 0;
        for e in cert.entries.iter() {
            let CertificateEntryRef::X509(der) = e else {
                return Err(self.refuse(CertificateFault::UnsupportedAlgorithm));
            };
            if let Some(slot) = ders.get_mut(n) {
                *slot = der;
                n += 1;
            }
        }
        let chain = ders.get(..n).unwrap_or_default();
        match verify_chain(chain, &self.anchors, self.host, &self.time) {
            Ok(leaf) => {
                let Some(dst) = self.leaf_spki.get_mut(..leaf.spki.len()) else {
                    return Err(self.refuse(CertificateFault::UnsupportedAlgorithm));
                };
                dst.copy_from_slice(leaf.spki);
                self.leaf_spki_len = leaf.spki.len();
                self.transcript = Some(transcript.clone());
                Ok(())
            }
            Err(f) => Err(self.refuse(f)),
        }
    }

    fn verify_signature(
        &mut self,
        verify: CertificateVerifyRef<'_>,
    ) -> core::result::Result<(), TlsError> {
        let Some(transcript) = self.transcript.take() else {
            return Err(self.refuse(CertificateFault::BadSignature));
        };
        // RFC 8446 §4.4.3: 64 spaces, the context string, a zero byte, the transcript hash.
        let hash = transcript.finalize();
        let mut msg = [0x20u8; 64 + 34 + 32];
        let ctx = b"TLS 1.3, server CertificateVerify\x00";
        for (o, b) in msg.iter_mut().skip(64).zip(ctx.iter().chain(hash.iter())) {
            *o = *b;
        }
        let spki = self.leaf_spki.get(..self.leaf_spki_len).unwrap_or_default();
        let alg = match verify.signature_scheme {
            SignatureScheme::EcdsaSecp256r1Sha256 => Some((SigAlg::Ecdsa(Hash::Sha256), true)),
            SignatureScheme::EcdsaSecp384r1Sha384 => Some((SigAlg::Ecdsa(Hash::Sha384), false)),
            SignatureScheme::RsaPssRsaeSha256 => Some((SigAlg::RsaPss(Hash::Sha256, 32), false)),
            SignatureScheme::RsaPssRsaeSha384 => Some((SigAlg::RsaPss(Hash::Sha384, 48), false)),
            SignatureScheme::RsaPssRsaeSha512 => Some((SigAlg::RsaPss(Hash::Sha512, 64), false)),
            _ => None,
        };
        let result = match (alg, PublicKey::parse(spki)) {
            (None, _) => Err(CertificateFault::UnsupportedAlgorithm),
            (_, Err(e)) => Err(e),
            (Some((alg, p256_only)), Ok(key)) => {
                // TLS 1.3 ties each ECDSA scheme to its curve.
                let curve_ok = match key {
                    PublicKey::P256(_) => p256_only,
                    PublicKey::P384(_) => alg == SigAlg::Ecdsa(Hash::Sha384),
                    PublicKey::Rsa { .. } => matches!(alg, SigAlg::RsaPss(..)),
                };
                if curve_ok {
                    signature::verify(&key, alg, &msg, verify.signature)
                } else {
                    Err(CertificateFault::BadSignature)
                }
            }
        };
        result.map_err(|f| self.refuse(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_rfc_6125() {
        let m = |p: &str, h: &str| dns_name_matches(p.as_bytes(), h.as_bytes());
        assert!(m("api.openai.com", "API.OpenAI.com"));
        assert!(m("api.openai.com", "api.openai.com."));
        assert!(m("*.openai.azure.com", "mine.openai.azure.com"));
        assert!(!m("*.openai.azure.com", "openai.azure.com"));
        assert!(!m("*.openai.azure.com", "a.b.openai.azure.com"));
        assert!(!m("*.com", "example.com"));
        assert!(!m("a*.example.com", "ab.example.com"));
        assert!(!m("*.*.example.com", "a.b.example.com"));
        assert!(!m("example.com", "example.org"));
        assert!(!m("", "example.com"));
        assert!(!m("*.example.com", ".example.com"));
    }

    #[test]
    fn ip_literals() {
        let mut b = [0u8; 16];
        assert_eq!(parse_ip("127.0.0.1", &mut b), Some(&[127, 0, 0, 1][..]));
        let mut b = [0u8; 16];
        assert_eq!(parse_ip("::1", &mut b).map(<[u8]>::len), Some(16));
        let mut b = [0u8; 16];
        assert_eq!(parse_ip("localhost", &mut b), None);
    }

    #[test]
    fn the_build_time_is_a_plausible_floor() {
        // After this code was written (2026-12-01) and before 2100.
        assert!(build_time() > 1_795_000_000);
        assert!(build_time() < 4_102_444_800);
        let p = TimePolicy::with_now(Some(0));
        assert_eq!(p.now, None, "a clock before the floor is ignored");
    }
}

#[cfg(all(test, feature = "builtin-roots"))]
mod builtin {
    use super::super::x509::Certificate;
    use super::*;

    #[test]
    fn every_builtin_root_parses_and_signs_itself() {
        let roots = crate::tls::BUILTIN_ROOTS;
        assert_eq!(roots.len(), 17);
        let (mut checked, mut sha1) = (0, 0);
        roots.any(|der| {
            let c = Certificate::parse(der).expect("a builtin root parses");
            assert!(c.is_ca, "a root is a CA");
            assert_eq!(c.subject, c.issuer, "self-issued");
            let key = PublicKey::parse(c.spki).expect("its key is supported");
            if c.sig_alg == SigAlg::Unsupported {
                // SHA-1 self-signatures of old roots: never checked, as anchors.
                sha1 += 1;
            } else {
                signature::verify(&key, c.sig_alg, c.tbs, c.signature).expect("self-signed");
                checked += 1;
            }
            false
        });
        assert_eq!(checked + sha1, 17);
        assert!(sha1 <= 3, "{sha1} roots with SHA-1 self-signatures");
    }
}

/// Hostile chains: every byte of a real chain flipped, truncated, or replaced, through the
/// whole verifier. Nothing may panic, and nothing mutated may verify.
#[cfg(all(test, feature = "std"))]
mod hostile {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn chain() -> (Vec<u8>, Vec<u8>) {
        let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("k");
        let mut rp =
            rcgen::CertificateParams::new(std::vec::Vec::<std::string::String>::new()).expect("p");
        rp.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root = rp.self_signed(&root_key).expect("root");
        let issuer = rcgen::Issuer::new(rp, root_key);
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("k");
        let leaf = rcgen::CertificateParams::new(std::vec!["a.example".into()])
            .expect("p")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        (root.der().to_vec(), leaf.der().to_vec())
    }

    #[test]
    fn mutated_chains_never_panic_and_never_verify() {
        let (root, leaf) = chain();
        let roots = [&root[..]];
        let anchors = TrustAnchors::from_der_list(&roots);
        let time = TimePolicy::with_now(None);
        assert!(verify_chain(&[&leaf], &anchors, "a.example", &time).is_ok());
        let mut x = 0x9E37_79B9u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut accepted = 0;
        for round in 0..1500 {
            let mut m = leaf.clone();
            match round % 3 {
                0 => {
                    let i = next() as usize % m.len();
                    m[i] ^= 1 << (next() % 8);
                }
                1 => m.truncate(next() as usize % m.len()),
                _ => {
                    let i = next() as usize % m.len();
                    m[i] = next() as u8;
                }
            }
            if m != leaf && verify_chain(&[&m], &anchors, "a.example", &time).is_ok() {
                accepted += 1;
            }
            let mut r = root.clone();
            let i = next() as usize % r.len();
            r[i] ^= 0x80;
            let mutated_roots = [&r[..]];
            let _ = verify_chain(
                &[&leaf],
                &TrustAnchors::from_der_list(&mutated_roots),
                "a.example",
                &time,
            );
            let _ = verify_chain(&[&leaf, &m, &r], &anchors, "a.example", &time);
        }
        // Every byte is either signed or part of the strict DER around the signature.
        assert_eq!(accepted, 0, "a mutated certificate verified");
    }
}
