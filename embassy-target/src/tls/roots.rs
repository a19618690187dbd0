//! The `builtin-roots` trust anchors: root certificates of the CAs behind the endpoints people
//! call (see `scripts/gen-roots`, which extracts them from Mozilla's root program as Debian ships
//! it). Use them with `TlsVerify::Roots(BUILTIN_ROOTS)`, or add your own: anchors are chosen by
//! issuer name, so any list works.

use super::TrustAnchors;

/// Root certificates (DER) of Let's Encrypt, Google Trust Services, GlobalSign, DigiCert,
/// Microsoft, Amazon, SSL.com and Sectigo (USERTrust).
pub const BUILTIN_ROOTS: TrustAnchors<'static> = TrustAnchors::from_der_list(&[
    include_bytes!("../../roots/amazon-root-ca-1.der"),
    include_bytes!("../../roots/amazon-root-ca-3.der"),
    include_bytes!("../../roots/digicert-global-root-ca.der"),
    include_bytes!("../../roots/digicert-global-root-g2.der"),
    include_bytes!("../../roots/globalsign-root-ca.der"),
    include_bytes!("../../roots/gts-root-r1.der"),
    include_bytes!("../../roots/gts-root-r2.der"),
    include_bytes!("../../roots/gts-root-r3.der"),
    include_bytes!("../../roots/gts-root-r4.der"),
    include_bytes!("../../roots/isrg-root-x1.der"),
    include_bytes!("../../roots/isrg-root-x2.der"),
    include_bytes!("../../roots/microsoft-ecc-root-2017.der"),
    include_bytes!("../../roots/microsoft-rsa-root-2017.der"),
    include_bytes!("../../roots/sslcom-root-ecc.der"),
    include_bytes!("../../roots/sslcom-root-rsa.der"),
    include_bytes!("../../roots/usertrust-ecc.der"),
    include_bytes!("../../roots/usertrust-rsa.der"),
]);
