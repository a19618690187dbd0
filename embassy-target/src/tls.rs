//! TLS 1.3 through embedded-tls (the TLS reqwless uses): the server is verified against one CA
//! certificate, or — only when the caller says so by name — not at all.
//!
//! embedded-tls checks the chain against the CA and the host name against the certificate's CN
//! (not its SAN), and has no clock, so it does not check expiry (DESIGN.md).

use embassy_time::Instant;
use embedded_tls::pki::CertVerifier;
use embedded_tls::{
    Aes128GcmSha256, Certificate, CryptoProvider, NoClock, TlsConfig, TlsConnection, TlsContext,
    TlsError, TlsVerifier, UnsecureProvider,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{CryptoRngCore, SeedableRng};

use crate::attempt::{AttemptFailure, TimeoutKind, within};

/// How `https://` servers are checked.
#[derive(Clone, Copy)]
pub enum TlsVerify<'a> {
    /// Verify the server's chain against this CA certificate (DER) and its name against the
    /// certificate's CN.
    Ca(&'a [u8]),
    /// Accept any server. Anyone on the path can read and change the traffic, API key
    /// included. Only for tests against servers you control.
    InsecureNoVerification,
}

impl core::fmt::Debug for TlsVerify<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TlsVerify::Ca(ca) => write!(f, "Ca({} bytes)", ca.len()),
            TlsVerify::InsecureNoVerification => f.write_str("InsecureNoVerification"),
        }
    }
}

struct Verifying {
    rng: ChaCha8Rng,
    verifier: CertVerifier<Aes128GcmSha256, NoClock, 4096>,
}

impl CryptoProvider for Verifying {
    type CipherSuite = Aes128GcmSha256;
    type Signature = p256::ecdsa::DerSignature;

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Self::CipherSuite>, TlsError> {
        Ok(&mut self.verifier)
    }
}

/// A TLS connection over `socket`, using the caller's record buffers.
pub(crate) type Tls<'b, S> = TlsConnection<'b, S, Aes128GcmSha256>;

/// Runs the TLS handshake under the connect deadline.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn handshake<'b, S>(
    socket: S,
    server_name: &str,
    verify: TlsVerify<'_>,
    read_buf: &'b mut [u8],
    write_buf: &'b mut [u8],
    seed: u64,
    connect_by: Instant,
    total: Instant,
) -> Result<Tls<'b, S>, AttemptFailure>
where
    S: embedded_io_async::Read + embedded_io_async::Write + 'b,
{
    let mut conn = TlsConnection::new(socket, read_buf, write_buf);
    let rng = ChaCha8Rng::seed_from_u64(seed);
    let opened = match verify {
        TlsVerify::Ca(ca) => {
            let config = TlsConfig::new()
                .with_server_name(server_name)
                .with_ca(Certificate::X509(ca));
            let provider = Verifying {
                rng,
                verifier: CertVerifier::new(),
            };
            within(
                connect_by,
                TimeoutKind::Connect,
                total,
                conn.open(TlsContext::new(&config, provider)),
            )
            .await?
        }
        TlsVerify::InsecureNoVerification => {
            let config = TlsConfig::new().with_server_name(server_name);
            let provider = UnsecureProvider::new::<Aes128GcmSha256>(rng);
            within(
                connect_by,
                TimeoutKind::Connect,
                total,
                conn.open(TlsContext::new(&config, provider)),
            )
            .await?
        }
    };
    match opened {
        Ok(()) => Ok(conn),
        Err(_) => Err(AttemptFailure::TlsHandshake),
    }
}
