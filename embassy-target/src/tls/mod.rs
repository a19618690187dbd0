//! TLS 1.3 for `https://` endpoints.
//!
//! The records and the handshake are embedded-tls's (TLS 1.3, AES-128-GCM, P-256 key exchange);
//! the server's certificate chain is verified here (module `verify`: chains up to a
//! set of trust anchors, ECDSA P-256/P-384 and RSA 2048–4096 with PKCS#1 v1.5 or PSS anywhere
//! in the chain, subjectAltName host names with RFC 6125 wildcards, validity against the
//! device's time or the build time as a floor).
//!
//! The handshake's randomness (the key share, the client random) comes from the caller's
//! cryptographically secure generator, given once to [`TlsSettings::new`]: the engine's jitter
//! seed never touches TLS. On a PC that is the OS (`rand_core::OsRng`); on an ESP32-C3 its
//! hardware RNG; on an RP2040 the ring oscillator's random bit, conditioned (see the Pico W
//! example).

mod signature;
mod verify;
mod x509;

#[cfg(feature = "builtin-roots")]
mod roots;

use embassy_time::Instant;
use embedded_tls::{
    Aes128GcmSha256, CryptoProvider, TlsConfig, TlsConnection, TlsContext, TlsError, TlsVerifier,
};
use steadyllm_core::call::CertificateFault;

/// The generator traits [`TlsSettings::new`] takes (rand_core 0.6, as embedded-tls, esp-hal
/// and embassy-rp implement them).
pub use rand_core::{CryptoRng, CryptoRngCore, RngCore};

#[cfg(feature = "builtin-roots")]
pub use roots::BUILTIN_ROOTS;
pub use verify::{MAX_INTERMEDIATES, TimePolicy, TrustAnchors, build_time};

use crate::attempt::{AttemptFailure, TimeoutKind, within};

/// How `https://` servers are checked.
#[derive(Clone, Copy)]
pub enum TlsVerify<'a> {
    /// Verify the server's chain against these roots and its name against the leaf's
    /// subjectAltName.
    Roots(TrustAnchors<'a>),
    /// Accept any server. Anyone on the path can read and change the traffic, API key
    /// included. Only for tests against servers you control.
    InsecureNoVerification,
}

impl core::fmt::Debug for TlsVerify<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TlsVerify::Roots(r) => write!(f, "Roots({r:?})"),
            TlsVerify::InsecureNoVerification => f.write_str("InsecureNoVerification"),
        }
    }
}

/// A client's TLS settings: how servers are verified, where the handshake's randomness comes
/// from, and (optionally) the device's time.
pub struct TlsSettings<'a> {
    pub(crate) verify: TlsVerify<'a>,
    pub(crate) rng: &'a mut dyn CryptoRngCore,
    pub(crate) clock: Option<fn() -> Option<u64>>,
}

impl<'a> TlsSettings<'a> {
    /// `rng` must be a cryptographically secure generator fed by real entropy (the trait bound
    /// asks for `CryptoRng`): the OS's, a hardware TRNG, or a CSPRNG seeded from one. It makes
    /// every handshake's key share, so a predictable one gives away the session keys and the
    /// API key with them.
    pub fn new(verify: TlsVerify<'a>, rng: &'a mut dyn CryptoRngCore) -> Self {
        TlsSettings {
            verify,
            rng,
            clock: None,
        }
    }

    /// The device's time (seconds since 1970, UTC, or `None` while unknown) for checking
    /// validity periods; see [`TimePolicy`]. Without it the build time is the floor.
    pub fn with_clock(mut self, now: fn() -> Option<u64>) -> Self {
        self.clock = Some(now);
        self
    }
}

impl core::fmt::Debug for TlsSettings<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("verify", &self.verify)
            .field("clock", &self.clock.is_some())
            .finish_non_exhaustive()
    }
}

/// The handshake's crypto: the caller's generator, and our verifier — or none, which
/// embedded-tls takes as "do not verify" (`TlsVerify::InsecureNoVerification` only).
struct Verifying<'v, 'a> {
    rng: &'v mut dyn CryptoRngCore,
    verifier: Option<&'v mut verify::Verifier<'a>>,
}

impl CryptoProvider for Verifying<'_, '_> {
    type CipherSuite = Aes128GcmSha256;
    type Signature = p256::ecdsa::DerSignature;

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut *self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Self::CipherSuite>, TlsError> {
        self.verifier.as_deref_mut().ok_or(TlsError::Unimplemented)
    }
}

/// A TLS connection over `socket`, using the caller's record buffers.
pub(crate) type Tls<'b, S> = TlsConnection<'b, S, Aes128GcmSha256>;

/// Runs the TLS handshake under the connect deadline.
pub(crate) async fn handshake<'b, S>(
    socket: S,
    server_name: &str,
    settings: &mut TlsSettings<'_>,
    read_buf: &'b mut [u8],
    write_buf: &'b mut [u8],
    connect_by: Instant,
) -> Result<Tls<'b, S>, AttemptFailure>
where
    S: embedded_io_async::Read + embedded_io_async::Write + 'b,
{
    let mut conn = TlsConnection::new(socket, read_buf, write_buf);
    // RSA schemes are offered too: the verifier checks RSA chains and PSS handshake signatures.
    let config = TlsConfig::new()
        .enable_rsa_signatures()
        .with_server_name(server_name);
    let time = TimePolicy::with_now(settings.clock.and_then(|c| c()));
    let mut verifier = match settings.verify {
        TlsVerify::Roots(anchors) => Some(verify::Verifier::new(anchors, server_name, time)),
        TlsVerify::InsecureNoVerification => None,
    };
    let provider = Verifying {
        rng: &mut *settings.rng,
        verifier: verifier.as_mut(),
    };
    let opened = within(
        connect_by,
        TimeoutKind::Connect,
        conn.open(TlsContext::new(&config, provider)),
    )
    .await?;
    let fault = verifier.and_then(|v| v.fault);
    match (opened, fault) {
        (Ok(()), _) => Ok(conn),
        (Err(_), Some(f)) => Err(AttemptFailure::Certificate(f)),
        (Err(e), None) => Err(handshake_failure(e)),
    }
}

/// A handshake error that was not the certificate: the network's fault (retried), or the
/// server's refusal or a protocol mismatch (not retried on the same server).
fn handshake_failure(e: TlsError) -> AttemptFailure {
    match e {
        TlsError::Io(kind) => AttemptFailure::Network(kind),
        TlsError::ConnectionClosed | TlsError::IoError => {
            AttemptFailure::Network(embedded_io::ErrorKind::ConnectionReset)
        }
        _ => AttemptFailure::TlsHandshake,
    }
}

/// Why a PEM bundle could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PemError {
    /// A `-----BEGIN CERTIFICATE-----` block without its END line.
    Unterminated,
    /// A character that is not base64 inside a block.
    NotBase64,
    /// The output buffer is too small; `needed` bytes at least.
    BufferTooSmall {
        /// Bytes needed so far.
        needed: usize,
    },
    /// No certificate in the input.
    Empty,
    /// A block that does not hold a DER certificate.
    NotACertificate(CertificateFault),
}

impl core::fmt::Display for PemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PemError::Unterminated => f.write_str("PEM block without its END line"),
            PemError::NotBase64 => f.write_str("PEM block is not base64"),
            PemError::BufferTooSmall { needed } => {
                write!(f, "PEM bundle needs a buffer of at least {needed} bytes")
            }
            PemError::Empty => f.write_str("no CERTIFICATE block"),
            PemError::NotACertificate(e) => write!(f, "PEM block is not a certificate: {e}"),
        }
    }
}

impl core::error::Error for PemError {}

/// Decodes every `CERTIFICATE` block of a PEM bundle (other blocks and text between blocks are
/// skipped) into `out`, DER certificates back to back, and returns the length written: the
/// input of [`TrustAnchors::from_der_bundle`]. Input that is already DER is copied as is.
pub fn decode_pem_bundle(input: &[u8], out: &mut [u8]) -> Result<usize, PemError> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    if input.first() == Some(&0x30) {
        let dst = out.get_mut(..input.len()).ok_or(PemError::BufferTooSmall {
            needed: input.len(),
        })?;
        dst.copy_from_slice(input);
        return check_bundle(out.get(..input.len()).unwrap_or_default()).map(|()| input.len());
    }
    let mut len = 0;
    let mut rest = input;
    while let Some(start) = find(rest, BEGIN) {
        let body = rest.get(start + BEGIN.len()..).unwrap_or_default();
        let end = find(body, END).ok_or(PemError::Unterminated)?;
        let b64 = body.get(..end).unwrap_or_default();
        let (mut acc, mut bits) = (0u32, 0u32);
        for &c in b64 {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' | b'\r' | b'\n' | b' ' | b'\t' => continue,
                _ => return Err(PemError::NotBase64),
            };
            acc = (acc << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                let byte = (acc >> bits) as u8;
                *out.get_mut(len)
                    .ok_or(PemError::BufferTooSmall { needed: len + 1 })? = byte;
                len += 1;
            }
        }
        rest = body.get(end + END.len()..).unwrap_or_default();
    }
    if len == 0 {
        return Err(PemError::Empty);
    }
    check_bundle(out.get(..len).unwrap_or_default())?;
    Ok(len)
}

fn check_bundle(der: &[u8]) -> Result<(), PemError> {
    let mut d = x509::Der::new(der);
    while !d.is_empty() {
        let (_, _, whole) = d.read_any().map_err(PemError::NotACertificate)?;
        x509::Certificate::parse(whole).map_err(PemError::NotACertificate)?;
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
