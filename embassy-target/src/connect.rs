//! Opening connections: DNS (skipped for IP literals) and TCP, each under the connect deadline.

use embassy_time::Instant;
use embedded_nal_async::{AddrType, Dns, TcpConnect};
use steadyllm_core::http::BaseUrl;

use crate::attempt::{AttemptFailure, TimeoutKind, within};

/// Resolves and connects to `url`, plain only (TLS lives in `open_tls`).
pub(crate) async fn connect_tcp<'a, T: TcpConnect, D: Dns>(
    tcp: &'a T,
    dns: &D,
    url: &BaseUrl<'_>,
    connect_deadline: Instant,
    total: Instant,
) -> Result<T::Connection<'a>, AttemptFailure> {
    let host = url.host_unbracketed();
    let ip = match ip_literal(host) {
        Some(ip) => ip,
        None => within(
            connect_deadline,
            TimeoutKind::Connect,
            total,
            dns.get_host_by_name(host, AddrType::Either),
        )
        .await?
        .map_err(|_| AttemptFailure::Network(embedded_io::ErrorKind::NotFound))?,
    };
    let addr = core::net::SocketAddr::new(ip, url.port());
    within(
        connect_deadline,
        TimeoutKind::Connect,
        total,
        tcp.connect(addr),
    )
    .await?
    .map_err(|e| AttemptFailure::Network(embedded_io::Error::kind(&e)))
}

/// An IP literal host: dotted IPv4 parsed by hand (core's `IpAddr` parser costs ~2 KiB of
/// flash), IPv6 by core only when the host has a colon.
fn ip_literal(host: &str) -> Option<core::net::IpAddr> {
    if host.contains(':') {
        return host
            .parse::<core::net::Ipv6Addr>()
            .ok()
            .map(core::net::IpAddr::V6);
    }
    let mut octets = [0u8; 4];
    let mut parts = host.split('.');
    for o in &mut octets {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.bytes().try_fold(0u16, |a, d| {
            let v = a * 10 + u16::from(d - b'0');
            (v <= 255).then_some(v)
        })? as u8;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(core::net::IpAddr::V4(core::net::Ipv4Addr::from(octets)))
}

#[cfg(test)]
mod tests {
    use super::ip_literal;

    #[test]
    fn ip_literals() {
        assert_eq!(ip_literal("127.0.0.1"), Some([127, 0, 0, 1].into()));
        assert_eq!(
            ip_literal("::1"),
            Some(core::net::Ipv6Addr::LOCALHOST.into())
        );
        for not_ip in [
            "localhost",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "api.openai.com",
            "",
        ] {
            assert_eq!(ip_literal(not_ip), None, "{not_ip}");
        }
    }
}
