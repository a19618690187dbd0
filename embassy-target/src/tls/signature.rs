//! Signature verification for certificates and the TLS 1.3 handshake: ECDSA on P-256 and P-384
//! (RustCrypto's `p256`/`p384`), and RSA 2048–4096 bits with PKCS#1 v1.5 or PSS padding,
//! written here on `crypto-bigint`'s fixed-size Montgomery arithmetic — no heap, which is why
//! embedded-tls's `rsa` feature (the `rsa` crate, which needs `alloc`) is not used.
//!
//! Only public-key operations happen here, on public data, so none of it needs to be constant
//! time.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{U4096, Uint, Word};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::Digest;
use steadyllm_core::call::CertificateFault;

use super::x509::{Hash, PublicKey, SigAlg};

type Result<T> = core::result::Result<T, CertificateFault>;

/// Largest RSA modulus accepted, in bytes (4096 bits).
const RSA_MAX: usize = 512;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const RSA_MIN: usize = 256;

/// A message digest, up to SHA-512's 64 bytes.
pub(crate) struct Digest64 {
    bytes: [u8; 64],
    len: usize,
}

impl Digest64 {
    pub fn of(hash: Hash, parts: &[&[u8]]) -> Digest64 {
        let mut bytes = [0u8; 64];
        let len = hash.len();
        match hash {
            Hash::Sha256 => fill(&mut bytes, sha2::Sha256::new(), parts),
            Hash::Sha384 => fill(&mut bytes, sha2::Sha384::new(), parts),
            Hash::Sha512 => fill(&mut bytes, sha2::Sha512::new(), parts),
        }
        Digest64 { bytes, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

fn fill<D: Digest>(out: &mut [u8; 64], mut d: D, parts: &[&[u8]]) {
    for p in parts {
        d.update(p);
    }
    let h = d.finalize();
    for (o, b) in out.iter_mut().zip(h.iter()) {
        *o = *b;
    }
}

/// Checks that `key` signed `message` with `alg`.
pub(crate) fn verify(key: &PublicKey<'_>, alg: SigAlg, message: &[u8], sig: &[u8]) -> Result<()> {
    let hash = match alg {
        SigAlg::Ecdsa(h) | SigAlg::RsaPkcs1(h) | SigAlg::RsaPss(h, _) => h,
        SigAlg::Unsupported => return Err(CertificateFault::UnsupportedAlgorithm),
    };
    let digest = Digest64::of(hash, &[message]);
    verify_prehashed(key, alg, digest.as_bytes(), sig)
}

/// Checks a signature over a digest already computed with `alg`'s hash.
pub(crate) fn verify_prehashed(
    key: &PublicKey<'_>,
    alg: SigAlg,
    digest: &[u8],
    sig: &[u8],
) -> Result<()> {
    match (key, alg) {
        (PublicKey::P256(point), SigAlg::Ecdsa(_)) => {
            let k = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| CertificateFault::Malformed)?;
            let s = p256::ecdsa::DerSignature::from_bytes(sig)
                .map_err(|_| CertificateFault::BadSignature)?;
            k.verify_prehash(digest, &s)
                .map_err(|_| CertificateFault::BadSignature)
        }
        (PublicKey::P384(point), SigAlg::Ecdsa(_)) => {
            let k = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| CertificateFault::Malformed)?;
            let s = p384::ecdsa::DerSignature::from_bytes(sig)
                .map_err(|_| CertificateFault::BadSignature)?;
            k.verify_prehash(digest, &s)
                .map_err(|_| CertificateFault::BadSignature)
        }
        (PublicKey::Rsa { n, e }, SigAlg::RsaPkcs1(h)) => {
            let mut em = [0u8; RSA_MAX];
            let k = rsa_public(n, e, sig, &mut em)?;
            pkcs1_v15_check(em.get(..k).unwrap_or_default(), h, digest)
        }
        (PublicKey::Rsa { n, e }, SigAlg::RsaPss(h, salt)) => {
            let mut em = [0u8; RSA_MAX];
            let k = rsa_public(n, e, sig, &mut em)?;
            let mod_bits = bit_len(n);
            pss_check(em.get(..k).unwrap_or_default(), mod_bits, h, salt, digest)
        }
        _ => Err(CertificateFault::BadSignature),
    }
}

fn bit_len(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        Some(i) => (n.len() - i) * 8 - n.get(i).map_or(0, |b| b.leading_zeros() as usize),
        None => 0,
    }
}

/// `sig^e mod n`, written big-endian into `out[..k]` where `k` is the modulus's byte length.
fn rsa_public(n: &[u8], e: &[u8], sig: &[u8], out: &mut [u8; RSA_MAX]) -> Result<usize> {
    let k = n.len();
    if !(RSA_MIN..=RSA_MAX).contains(&k) || n.last().is_none_or(|b| b & 1 == 0) {
        return Err(CertificateFault::UnsupportedAlgorithm);
    }
    // Public exponents are small (65537 nearly always); at most 32 bits are accepted.
    if e.is_empty() || e.len() > 4 {
        return Err(CertificateFault::UnsupportedAlgorithm);
    }
    let e = e.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b));
    if e < 3 || e & 1 == 0 {
        return Err(CertificateFault::UnsupportedAlgorithm);
    }
    if sig.len() != k {
        return Err(CertificateFault::BadSignature);
    }
    let n = to_uint(n);
    let s = to_uint(sig);
    if s >= n {
        return Err(CertificateFault::BadSignature);
    }
    #[allow(deprecated)] // `new_checked` is the non-panicking form in crypto-bigint 0.5.
    let params =
        Option::<DynResidueParams<{ U4096::LIMBS }>>::from(DynResidueParams::new_checked(&n))
            .ok_or(CertificateFault::Malformed)?;
    let base = DynResidue::new(&s, params);
    // Left-to-right square and multiply over the exponent's bits: public data, no window
    // table (a 4-bit window would put 8 KiB on a microcontroller's stack).
    let mut acc = base;
    let top = 31 - e.leading_zeros();
    for bit in (0..top).rev() {
        acc = acc.square();
        if (e >> bit) & 1 == 1 {
            acc = acc.mul(&base);
        }
    }
    // Big-endian bytes of the result: limbs are stored least significant first.
    let mut full = [0u8; RSA_MAX];
    let words = acc.retrieve().to_words();
    for (chunk, w) in full
        .rchunks_mut(core::mem::size_of::<Word>())
        .zip(words.iter())
    {
        for (o, b) in chunk.iter_mut().zip(w.to_be_bytes()) {
            *o = b;
        }
    }
    for (o, b) in out
        .iter_mut()
        .zip(full.get(RSA_MAX - k..).unwrap_or_default())
    {
        *o = *b;
    }
    Ok(k)
}

fn to_uint(bytes: &[u8]) -> U4096 {
    let mut buf = [0u8; RSA_MAX];
    let start = RSA_MAX.saturating_sub(bytes.len());
    for (o, b) in buf.iter_mut().skip(start).zip(bytes) {
        *o = *b;
    }
    Uint::from_be_slice(&buf)
}

/// DigestInfo prefixes (RFC 8017 §9.2 note 1).
fn digest_info(h: Hash) -> &'static [u8] {
    match h {
        Hash::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        Hash::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        Hash::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// EMSA-PKCS1-v1_5: the encoded message must be exactly `00 01 FF…FF 00 DigestInfo digest`
/// (built and compared whole, never parsed).
fn pkcs1_v15_check(em: &[u8], h: Hash, digest: &[u8]) -> Result<()> {
    let prefix = digest_info(h);
    let t_len = prefix.len() + digest.len();
    let k = em.len();
    if k < t_len + 11 {
        return Err(CertificateFault::BadSignature);
    }
    let ps_end = k - t_len - 1;
    let ok = em.first() == Some(&0)
        && em.get(1) == Some(&1)
        && em
            .get(2..ps_end)
            .is_some_and(|ps| ps.iter().all(|&b| b == 0xFF))
        && em.get(ps_end) == Some(&0)
        && em.get(ps_end + 1..ps_end + 1 + prefix.len()) == Some(prefix)
        && em.get(k - digest.len()..) == Some(digest);
    if ok {
        Ok(())
    } else {
        Err(CertificateFault::BadSignature)
    }
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 over the same hash.
fn pss_check(em_k: &[u8], mod_bits: usize, h: Hash, salt_len: usize, m_hash: &[u8]) -> Result<()> {
    let bad = Err(CertificateFault::BadSignature);
    let em_bits = mod_bits.saturating_sub(1);
    let em_len = em_bits.div_ceil(8);
    // When emLen < k the leading byte of the k-byte value must be zero.
    let (lead, em) = em_k
        .split_at_checked(em_k.len().saturating_sub(em_len))
        .ok_or(CertificateFault::BadSignature)?;
    if lead.iter().any(|&b| b != 0) {
        return bad;
    }
    let h_len = h.len();
    if em_len < h_len.saturating_add(salt_len).saturating_add(2) || em.last() != Some(&0xBC) {
        return bad;
    }
    let db_len = em_len - h_len - 1;
    let (masked_db, rest) = em
        .split_at_checked(db_len)
        .ok_or(CertificateFault::BadSignature)?;
    let hh = rest.get(..h_len).ok_or(CertificateFault::BadSignature)?;
    let top_bits = 8 * em_len - em_bits;
    let top_mask = if top_bits >= 8 { 0 } else { 0xFFu8 >> top_bits };
    if masked_db.first().is_some_and(|b| b & !top_mask != 0) {
        return bad;
    }
    let mut db = [0u8; RSA_MAX];
    let db = db.get_mut(..db_len).ok_or(CertificateFault::BadSignature)?;
    // DB = maskedDB xor MGF1(H, dbLen)
    let mut counter = 0u32;
    let mut pos = 0;
    while pos < db_len {
        let block = Digest64::of(h, &[hh, &counter.to_be_bytes()]);
        for b in block.as_bytes() {
            if let (Some(d), Some(m)) = (db.get_mut(pos), masked_db.get(pos)) {
                *d = m ^ b;
            }
            pos += 1;
        }
        counter += 1;
    }
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    let zeros = db_len - salt_len - 1;
    if db.get(..zeros).is_none_or(|z| z.iter().any(|&b| b != 0)) || db.get(zeros) != Some(&1) {
        return bad;
    }
    let salt = db.get(zeros + 1..).unwrap_or_default();
    let h2 = Digest64::of(h, &[&[0u8; 8], m_hash, salt]);
    if h2.as_bytes() == hh { Ok(()) } else { bad }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[0x00, 0x80, 0]), 16);
        assert_eq!(bit_len(&[0x01, 0]), 9);
        assert_eq!(bit_len(&[0, 0]), 0);
    }

    #[test]
    fn pkcs1_encoding_is_compared_whole() {
        let digest = [7u8; 32];
        let mut em = [0xFFu8; 256];
        em[0] = 0;
        em[1] = 1;
        let t = 19 + 32;
        em[256 - t - 1] = 0;
        em[256 - t..256 - 32].copy_from_slice(digest_info(Hash::Sha256));
        em[256 - 32..].copy_from_slice(&digest);
        assert_eq!(pkcs1_v15_check(&em, Hash::Sha256, &digest), Ok(()));
        let mut wrong = em;
        wrong[5] = 0xFE;
        assert!(pkcs1_v15_check(&wrong, Hash::Sha256, &digest).is_err());
        assert!(pkcs1_v15_check(&em, Hash::Sha256, &[8u8; 32]).is_err());
        assert!(pkcs1_v15_check(&em[..40], Hash::Sha256, &digest).is_err());
    }

    #[test]
    fn rsa_refuses_bad_sizes_without_panicking() {
        let mut out = [0u8; RSA_MAX];
        let n = [0xFFu8; 256];
        assert!(rsa_public(&n, &[1, 0, 1], &[1u8; 255], &mut out).is_err());
        assert!(rsa_public(&n, &[1, 0, 1], &[0xFFu8; 256], &mut out).is_err()); // s >= n
        assert!(rsa_public(&[0xFFu8; 128], &[1, 0, 1], &[1u8; 128], &mut out).is_err());
        assert!(rsa_public(&[0xFEu8; 256], &[1, 0, 1], &[1u8; 256], &mut out).is_err()); // even
        assert!(rsa_public(&n, &[2], &[1u8; 256], &mut out).is_err());
        assert!(rsa_public(&n, &[], &[1u8; 256], &mut out).is_err());
        assert!(pss_check(&[0u8; 10], 80, Hash::Sha256, 32, &[0; 32]).is_err());
    }
}

/// Our RSA and ECDSA checks against independent implementations (the `rsa` crate signs with
/// PKCS#1 v1.5 and PSS over every hash; rcgen/ring sign certificates).
#[cfg(all(test, feature = "std"))]
mod cross_checks {
    extern crate std;
    use std::vec::Vec;

    use rsa::pkcs1v15::SigningKey as Pkcs1Key;
    use rsa::pss::BlindedSigningKey as PssKey;
    use rsa::signature::{RandomizedSigner, SignatureEncoding};
    use rsa::traits::PublicKeyParts;

    use super::*;

    fn key(bits: usize) -> rsa::RsaPrivateKey {
        rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).expect("keygen")
    }

    fn public(k: &rsa::RsaPrivateKey) -> (Vec<u8>, Vec<u8>) {
        (k.n().to_bytes_be(), k.e().to_bytes_be())
    }

    #[test]
    fn rsa_signatures_of_every_hash_and_padding_verify_and_tampering_fails() {
        let msg = b"tbsCertificate bytes";
        for bits in [2048, 3072] {
            let k = key(bits);
            let (n, e) = public(&k);
            let pk = PublicKey::Rsa { n: &n, e: &e };
            let sigs: [(SigAlg, Vec<u8>); 6] = [
                (
                    SigAlg::RsaPkcs1(Hash::Sha256),
                    Pkcs1Key::<sha2::Sha256>::new(k.clone())
                        .sign_with_rng(&mut rand_core::OsRng, msg)
                        .to_vec(),
                ),
                (
                    SigAlg::RsaPkcs1(Hash::Sha384),
                    Pkcs1Key::<sha2::Sha384>::new(k.clone())
                        .sign_with_rng(&mut rand_core::OsRng, msg)
                        .to_vec(),
                ),
                (
                    SigAlg::RsaPkcs1(Hash::Sha512),
                    Pkcs1Key::<sha2::Sha512>::new(k.clone())
                        .sign_with_rng(&mut rand_core::OsRng, msg)
                        .to_vec(),
                ),
                (
                    SigAlg::RsaPss(Hash::Sha256, 32),
                    PssKey::<sha2::Sha256>::new(k.clone())
                        .sign_with_rng(&mut rand_core::OsRng, msg)
                        .to_vec(),
                ),
                (
                    SigAlg::RsaPss(Hash::Sha384, 48),
                    PssKey::<sha2::Sha384>::new(k.clone())
                        .sign_with_rng(&mut rand_core::OsRng, msg)
                        .to_vec(),
                ),
                (
                    SigAlg::RsaPss(Hash::Sha512, 64),
                    PssKey::<sha2::Sha512>::new(k.clone())
                        .sign_with_rng(&mut rand_core::OsRng, msg)
                        .to_vec(),
                ),
            ];
            for (alg, sig) in &sigs {
                assert_eq!(verify(&pk, *alg, msg, sig), Ok(()), "{bits} {alg:?}");
                assert_eq!(
                    verify(&pk, *alg, b"another message", sig),
                    Err(CertificateFault::BadSignature),
                    "{bits} {alg:?}"
                );
                let mut bad = sig.clone();
                bad[bits / 16] ^= 1;
                assert!(verify(&pk, *alg, msg, &bad).is_err(), "{bits} {alg:?}");
            }
            // A PKCS#1 signature is not a PSS one, and hashes are not interchangeable.
            assert!(verify(&pk, SigAlg::RsaPss(Hash::Sha256, 32), msg, &sigs[0].1).is_err());
            assert!(verify(&pk, SigAlg::RsaPkcs1(Hash::Sha384), msg, &sigs[0].1).is_err());
        }
    }

    #[test]
    fn a_4096_bit_key_verifies() {
        let k = key(4096);
        let (n, e) = public(&k);
        let sig = Pkcs1Key::<sha2::Sha256>::new(k)
            .sign_with_rng(&mut rand_core::OsRng, b"root")
            .to_vec();
        let pk = PublicKey::Rsa { n: &n, e: &e };
        assert_eq!(
            verify(&pk, SigAlg::RsaPkcs1(Hash::Sha256), b"root", &sig),
            Ok(())
        );
    }

    #[test]
    fn ecdsa_certificates_signed_by_ring_verify() {
        for (alg, hash, curve) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, Hash::Sha256, 256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, Hash::Sha384, 384),
        ] {
            let kp = rcgen::KeyPair::generate_for(alg).expect("key");
            let cert = rcgen::CertificateParams::new(std::vec!["x.example".into()])
                .expect("params")
                .self_signed(&kp)
                .expect("cert");
            let c = super::super::x509::Certificate::parse(cert.der()).expect("parse");
            assert_eq!(c.sig_alg, SigAlg::Ecdsa(hash), "P-{curve}");
            let key = PublicKey::parse(c.spki).expect("spki");
            assert_eq!(
                verify(&key, c.sig_alg, c.tbs, c.signature),
                Ok(()),
                "P-{curve}"
            );
            let mut tbs = c.tbs.to_vec();
            let last = tbs.len() - 1;
            tbs[last] ^= 1;
            assert_eq!(
                verify(&key, c.sig_alg, &tbs, c.signature),
                Err(CertificateFault::BadSignature)
            );
        }
    }
}
