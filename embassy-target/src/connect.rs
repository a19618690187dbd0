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
    let ip = match host.parse::<core::net::IpAddr>() {
        Ok(ip) => ip,
        Err(_) => within(
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
