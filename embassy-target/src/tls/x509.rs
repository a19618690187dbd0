//! A zero-copy view of X.509 certificates (RFC 5280): just what server authentication needs,
//! read from the DER bytes in place. Nothing here allocates or panics: every length is checked
//! against the bytes that are there, and anything unexpected is [`CertificateFault::Malformed`].

use steadyllm_core::call::CertificateFault;

type Result<T> = core::result::Result<T, CertificateFault>;

/// DER tags used here.
pub(crate) mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const UTC_TIME: u8 = 0x17;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    /// `[n]` constructed, context-specific.
    pub const fn explicit(n: u8) -> u8 {
        0xA0 | n
    }
}

/// Reads DER values one after another from a slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Der { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next value's tag without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next value: its tag, its contents, and its whole encoding (tag and length included).
    pub fn read_any(&mut self) -> Result<(u8, &'a [u8], &'a [u8])> {
        let all = self.rest;
        let (&t, rest) = all.split_first().ok_or(CertificateFault::Malformed)?;
        if t & 0x1F == 0x1F {
            // High tag numbers never occur in certificates.
            return Err(CertificateFault::Malformed);
        }
        let (&first, mut rest) = rest.split_first().ok_or(CertificateFault::Malformed)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 3 {
                // Indefinite lengths are BER, and no certificate is 16 MiB.
                return Err(CertificateFault::Malformed);
            }
            let (bytes, r) = rest
                .split_at_checked(n)
                .ok_or(CertificateFault::Malformed)?;
            rest = r;
            let len = bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
            if len < 0x80 || bytes.first() == Some(&0) {
                return Err(CertificateFault::Malformed); // not the shortest form
            }
            len
        };
        let (value, rest) = rest
            .split_at_checked(len)
            .ok_or(CertificateFault::Malformed)?;
        let whole = all.len() - rest.len();
        self.rest = rest;
        Ok((
            t,
            value,
            all.get(..whole).ok_or(CertificateFault::Malformed)?,
        ))
    }

    /// The next value, which must have tag `want`.
    pub fn read(&mut self, want: u8) -> Result<&'a [u8]> {
        match self.read_any()? {
            (t, v, _) if t == want => Ok(v),
            _ => Err(CertificateFault::Malformed),
        }
    }

    /// The next value if it has tag `want`.
    pub fn read_optional(&mut self, want: u8) -> Result<Option<&'a [u8]>> {
        if self.peek_tag() == Some(want) {
            self.read(want).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A SEQUENCE's contents as a reader.
    pub fn sequence(&mut self) -> Result<Der<'a>> {
        self.read(tag::SEQUENCE).map(Der::new)
    }

    /// The reader must be exhausted.
    pub fn finish(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CertificateFault::Malformed)
        }
    }
}

/// A BIT STRING with no unused bits (keys and signatures), as bytes.
pub(crate) fn bit_string_bytes(v: &[u8]) -> Result<&[u8]> {
    match v.split_first() {
        Some((0, rest)) => Ok(rest),
        _ => Err(CertificateFault::Malformed),
    }
}

/// An unsigned INTEGER's magnitude, without the sign byte.
pub(crate) fn unsigned_integer(v: &[u8]) -> Result<&[u8]> {
    match v {
        [] => Err(CertificateFault::Malformed),
        [first, ..] if first & 0x80 != 0 => Err(CertificateFault::Malformed),
        [0, rest @ ..] if !rest.is_empty() => Ok(rest),
        _ => Ok(v),
    }
}

/// OIDs, DER-encoded contents.
pub(crate) mod oid {
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    pub const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    pub const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
    pub const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
    pub const ECDSA_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
    pub const ECDSA_SHA384: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03];
    pub const ECDSA_SHA512: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04];
    pub const RSA_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
    pub const RSA_SHA384: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C];
    pub const RSA_SHA512: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D];
    pub const RSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
    pub const MGF1: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08];
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1D, 0x13];
    pub const KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x0F];
    pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1D, 0x11];
    pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x25];
    pub const SERVER_AUTH: &[u8] = &[0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    pub const ANY_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x25, 0x00];
    /// Extensions that may be critical and are understood well enough to be ignored here:
    /// policies and policy constraints (no policy is required of a server chain),
    /// key identifiers.
    pub const IGNORABLE_CRITICAL: &[&[u8]] = &[
        &[0x55, 0x1D, 0x20], // certificatePolicies
        &[0x55, 0x1D, 0x24], // policyConstraints
        &[0x55, 0x1D, 0x36], // inhibitAnyPolicy
        &[0x55, 0x1D, 0x0E], // subjectKeyIdentifier
        &[0x55, 0x1D, 0x23], // authorityKeyIdentifier
    ];
}

/// A hash function of a signature algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(o: &[u8]) -> Result<Hash> {
        match o {
            oid::SHA256 => Ok(Hash::Sha256),
            oid::SHA384 => Ok(Hash::Sha384),
            oid::SHA512 => Ok(Hash::Sha512),
            _ => Err(CertificateFault::UnsupportedAlgorithm),
        }
    }

    pub fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// A signature algorithm as named in a certificate (or a TLS 1.3 signature scheme).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigAlg {
    Ecdsa(Hash),
    RsaPkcs1(Hash),
    /// RSASSA-PSS with MGF1 over the same hash, and this salt length.
    RsaPss(Hash, usize),
    /// An algorithm this client does not verify (SHA-1 in old roots' self-signatures, which
    /// nobody checks): a signature with it never verifies.
    Unsupported,
}

impl SigAlg {
    /// Reads an AlgorithmIdentifier's contents.
    fn parse(alg: &[u8]) -> Result<SigAlg> {
        let mut d = Der::new(alg);
        let o = d.read(tag::OID)?;
        let alg = match o {
            oid::ECDSA_SHA256 => SigAlg::Ecdsa(Hash::Sha256),
            oid::ECDSA_SHA384 => SigAlg::Ecdsa(Hash::Sha384),
            oid::ECDSA_SHA512 => SigAlg::Ecdsa(Hash::Sha512),
            oid::RSA_SHA256 | oid::RSA_SHA384 | oid::RSA_SHA512 => {
                // The parameters are NULL (or, rarely, absent).
                d.read_optional(tag::NULL)?;
                SigAlg::RsaPkcs1(match o {
                    oid::RSA_SHA256 => Hash::Sha256,
                    oid::RSA_SHA384 => Hash::Sha384,
                    _ => Hash::Sha512,
                })
            }
            oid::RSA_PSS => {
                return match parse_pss_params(d.sequence()?) {
                    Err(CertificateFault::UnsupportedAlgorithm) => Ok(SigAlg::Unsupported),
                    r => r,
                };
            }
            _ => return Ok(SigAlg::Unsupported),
        };
        d.finish()?;
        Ok(alg)
    }
}

/// RSASSA-PSS-params (RFC 4055): only MGF1 with the message hash and trailer 1; the defaults
/// (SHA-1) are not accepted.
fn parse_pss_params(mut p: Der<'_>) -> Result<SigAlg> {
    let hash_alg = p.read(tag::explicit(0))?;
    let hash = Hash::from_oid(Der::new(hash_alg).sequence()?.read(tag::OID)?)?;
    let mgf = p.read(tag::explicit(1))?;
    let mut mgf = Der::new(mgf).sequence()?;
    if mgf.read(tag::OID)? != oid::MGF1 {
        return Err(CertificateFault::UnsupportedAlgorithm);
    }
    if Hash::from_oid(mgf.sequence()?.read(tag::OID)?)? != hash {
        return Err(CertificateFault::UnsupportedAlgorithm);
    }
    let salt = match p.read_optional(tag::explicit(2))? {
        Some(s) => small_uint(unsigned_integer(Der::new(s).read(tag::INTEGER)?)?)?,
        None => 20,
    };
    if let Some(t) = p.read_optional(tag::explicit(3))?
        && small_uint(unsigned_integer(Der::new(t).read(tag::INTEGER)?)?)? != 1
    {
        return Err(CertificateFault::UnsupportedAlgorithm);
    }
    p.finish()?;
    Ok(SigAlg::RsaPss(hash, salt))
}

fn small_uint(b: &[u8]) -> Result<usize> {
    if b.len() > 4 {
        return Err(CertificateFault::UnsupportedAlgorithm);
    }
    Ok(b.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x)))
}

/// A public key from a SubjectPublicKeyInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PublicKey<'a> {
    /// An uncompressed (or compressed) SEC1 point on P-256.
    P256(&'a [u8]),
    /// A SEC1 point on P-384.
    P384(&'a [u8]),
    /// An RSA modulus and public exponent (big-endian magnitudes).
    Rsa { n: &'a [u8], e: &'a [u8] },
}

impl<'a> PublicKey<'a> {
    /// Reads a SubjectPublicKeyInfo's contents.
    pub fn parse(spki: &'a [u8]) -> Result<PublicKey<'a>> {
        let mut d = Der::new(spki);
        let mut alg = d.sequence()?;
        let key = bit_string_bytes(d.read(tag::BIT_STRING)?)?;
        d.finish()?;
        match alg.read(tag::OID)? {
            oid::EC_PUBLIC_KEY => {
                let curve = alg.read(tag::OID)?;
                alg.finish()?;
                match curve {
                    oid::P256 => Ok(PublicKey::P256(key)),
                    oid::P384 => Ok(PublicKey::P384(key)),
                    _ => Err(CertificateFault::UnsupportedAlgorithm),
                }
            }
            oid::RSA_ENCRYPTION => {
                alg.read_optional(tag::NULL)?;
                alg.finish()?;
                let mut k = Der::new(key).sequence()?;
                let n = unsigned_integer(k.read(tag::INTEGER)?)?;
                let e = unsigned_integer(k.read(tag::INTEGER)?)?;
                k.finish()?;
                Ok(PublicKey::Rsa { n, e })
            }
            _ => Err(CertificateFault::UnsupportedAlgorithm),
        }
    }
}

/// One certificate, borrowed from its DER encoding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Certificate<'a> {
    /// The signed part, whole (tag and length included): what the issuer's signature covers.
    pub tbs: &'a [u8],
    /// The algorithm the issuer signed with.
    pub sig_alg: SigAlg,
    /// The issuer's signature.
    pub signature: &'a [u8],
    /// Issuer and subject names, whole encodings (compared byte for byte, as chain builders do).
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    /// Validity, seconds since 1970 (UTC).
    pub not_before: i64,
    pub not_after: i64,
    /// SubjectPublicKeyInfo contents.
    pub spki: &'a [u8],
    /// basicConstraints cA.
    pub is_ca: bool,
    /// basicConstraints pathLenConstraint.
    pub path_len: Option<usize>,
    /// keyUsage bits (bit 0 = digitalSignature is the most significant bit of the first
    /// byte), when present.
    pub key_usage: Option<u16>,
    /// extKeyUsage allows server authentication (or is absent).
    pub server_auth: bool,
    /// subjectAltName contents (a sequence of GeneralName), when present.
    pub san: Option<&'a [u8]>,
}

/// keyUsage bits as this module stores them.
pub(crate) const KU_DIGITAL_SIGNATURE: u16 = 0x8000;
pub(crate) const KU_KEY_CERT_SIGN: u16 = 0x0400;

impl<'a> Certificate<'a> {
    /// Parses a DER certificate.
    pub fn parse(der: &'a [u8]) -> Result<Certificate<'a>> {
        let mut outer = Der::new(der);
        let mut cert = outer.sequence()?;
        outer.finish()?;
        let (t, tbs_contents, tbs) = cert.read_any()?;
        if t != tag::SEQUENCE {
            return Err(CertificateFault::Malformed);
        }
        let sig_alg = SigAlg::parse(cert.read(tag::SEQUENCE)?)?;
        let signature = bit_string_bytes(cert.read(tag::BIT_STRING)?)?;
        cert.finish()?;

        let mut t = Der::new(tbs_contents);
        if let Some(v) = t.read_optional(tag::explicit(0))? {
            // v3 (2) is the only version with extensions; v1 roots still exist.
            let v = Der::new(v).read(tag::INTEGER)?;
            if v != [2] && v != [1] && v != [0] {
                return Err(CertificateFault::Malformed);
            }
        }
        t.read(tag::INTEGER)?; // serial
        let inner_alg = SigAlg::parse(t.read(tag::SEQUENCE)?)?;
        if inner_alg != sig_alg {
            return Err(CertificateFault::Malformed);
        }
        let issuer = name(&mut t)?;
        let mut validity = t.sequence()?;
        let not_before = read_time(&mut validity)?;
        let not_after = read_time(&mut validity)?;
        validity.finish()?;
        let subject = name(&mut t)?;
        let spki = t.read(tag::SEQUENCE)?;
        // issuerUniqueID [1] and subjectUniqueID [2] (implicit, primitive or constructed).
        for n in [1u8, 2] {
            if matches!(t.peek_tag(), Some(x) if x & 0x1F == n && x & 0xC0 == 0x80) {
                t.read_any()?;
            }
        }
        let mut c = Certificate {
            tbs,
            sig_alg,
            signature,
            issuer,
            subject,
            not_before,
            not_after,
            spki,
            is_ca: false,
            path_len: None,
            key_usage: None,
            server_auth: true,
            san: None,
        };
        if let Some(exts) = t.read_optional(tag::explicit(3))? {
            let mut outer = Der::new(exts);
            let mut exts = outer.sequence()?;
            outer.finish()?;
            while !exts.is_empty() {
                let mut ext = exts.sequence()?;
                let id = ext.read(tag::OID)?;
                let critical = match ext.read_optional(tag::BOOLEAN)? {
                    Some([0xFF]) => true,
                    Some([0x00]) => false,
                    Some(_) => return Err(CertificateFault::Malformed),
                    None => false,
                };
                let value = ext.read(tag::OCTET_STRING)?;
                ext.finish()?;
                c.extension(id, critical, value)?;
            }
        }
        t.finish()?;
        Ok(c)
    }

    fn extension(&mut self, id: &[u8], critical: bool, value: &'a [u8]) -> Result<()> {
        let mut v = Der::new(value);
        match id {
            oid::BASIC_CONSTRAINTS => {
                let mut bc = v.sequence()?;
                self.is_ca = matches!(bc.read_optional(tag::BOOLEAN)?, Some([0xFF]));
                if let Some(n) = bc.read_optional(tag::INTEGER)? {
                    self.path_len = Some(small_uint(unsigned_integer(n)?)?);
                }
                bc.finish()?;
            }
            oid::KEY_USAGE => {
                let bits = v.read(tag::BIT_STRING)?;
                let (_unused, bytes) = bits.split_first().ok_or(CertificateFault::Malformed)?;
                let hi = u16::from(bytes.first().copied().unwrap_or(0));
                let lo = u16::from(bytes.get(1).copied().unwrap_or(0));
                self.key_usage = Some((hi << 8) | lo);
            }
            oid::SUBJECT_ALT_NAME => self.san = Some(v.read(tag::SEQUENCE)?),
            oid::EXT_KEY_USAGE => {
                let mut ekus = v.sequence()?;
                let mut server = false;
                while !ekus.is_empty() {
                    let o = ekus.read(tag::OID)?;
                    server |= o == oid::SERVER_AUTH || o == oid::ANY_EXT_KEY_USAGE;
                }
                self.server_auth = server;
            }
            _ if critical && !oid::IGNORABLE_CRITICAL.contains(&id) => {
                // nameConstraints and anything else we do not enforce: refuse rather than
                // accept a restriction we would ignore.
                return Err(CertificateFault::BadUsage);
            }
            _ => return Ok(()),
        }
        v.finish()
    }
}

/// A Name, whole (a SEQUENCE).
fn name<'a>(d: &mut Der<'a>) -> Result<&'a [u8]> {
    match d.read_any()? {
        (tag::SEQUENCE, _, whole) => Ok(whole),
        _ => Err(CertificateFault::Malformed),
    }
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), as
/// seconds since 1970.
fn read_time(d: &mut Der<'_>) -> Result<i64> {
    let (t, v, _) = d.read_any()?;
    let (year, rest) = match (t, v.len()) {
        (tag::UTC_TIME, 13) => {
            let yy = digits(v.get(..2))?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, v.get(2..))
        }
        (tag::GENERALIZED_TIME, 15) => (digits(v.get(..4))?, v.get(4..)),
        _ => return Err(CertificateFault::Malformed),
    };
    let r = rest.ok_or(CertificateFault::Malformed)?;
    if r.last() != Some(&b'Z') {
        return Err(CertificateFault::Malformed);
    }
    let month = digits(r.get(0..2))?;
    let day = digits(r.get(2..4))?;
    let (h, m, s) = (
        digits(r.get(4..6))?,
        digits(r.get(6..8))?,
        digits(r.get(8..10))?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return Err(CertificateFault::Malformed);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

fn digits(b: Option<&[u8]>) -> Result<i64> {
    let b = b.ok_or(CertificateFault::Malformed)?;
    b.iter().try_fold(0i64, |a, &c| {
        if c.is_ascii_digit() {
            Ok(a * 10 + i64::from(c - b'0'))
        } else {
            Err(CertificateFault::Malformed)
        }
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 1), 20_788);
    }

    #[test]
    fn times_of_both_forms() {
        let mut d = Der::new(b"\x17\x0d491231235959Z");
        assert_eq!(read_time(&mut d), Ok(2_524_607_999));
        let mut d = Der::new(b"\x17\x0d500101000000Z");
        assert_eq!(read_time(&mut d), Ok(-631_152_000));
        let mut d = Der::new(b"\x18\x0f20500101000000Z");
        assert_eq!(read_time(&mut d), Ok(2_524_608_000));
        for bad in [
            &b"\x17\x0d491331235959Z"[..],
            b"\x17\x0d4912312359590",
            b"\x17\x0c49123123595Z",
            b"\x18\x0d491231235959Z",
        ] {
            assert_eq!(
                read_time(&mut Der::new(bad)),
                Err(CertificateFault::Malformed)
            );
        }
    }

    #[test]
    fn lengths_are_checked() {
        assert!(Der::new(&[0x30, 0x05, 1, 2]).read_any().is_err());
        assert!(Der::new(&[0x30, 0x80]).read_any().is_err());
        assert!(
            Der::new(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0])
                .read_any()
                .is_err()
        ); // long form for a short length
        assert!(Der::new(&[0x30, 0x84, 1, 0, 0, 0]).read_any().is_err());
        assert!(Der::new(&[0x30]).read_any().is_err());
        assert_eq!(
            Der::new(&[0x04, 0x02, 7, 8, 9]).read(tag::OCTET_STRING),
            Ok(&[7u8, 8][..])
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x1234_5678u32;
        let mut buf = [0u8; 300];
        for round in 0..20_000 {
            let len = (round % 300) + 1;
            for b in buf.iter_mut().take(len) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            if round % 3 == 0 {
                buf[0] = 0x30;
            }
            let _ = Certificate::parse(&buf[..len]);
            let _ = PublicKey::parse(&buf[..len]);
        }
    }
}
