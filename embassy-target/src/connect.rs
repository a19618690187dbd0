//! Opening connections: DNS (skipped for IPv4 literals; the stack parses IPv6 literals) and
//! TCP, each under the connect deadline.

use embassy_time::Instant;
use embedded_nal_async::{AddrType, Dns, TcpConnect};
use steadyllm_core::http::BaseUrl;

use crate::attempt::{AttemptFailure, TimeoutKind, within};

/// Resolves and connects to `url`, plain TCP (TLS is set up over it in `tls::handshake`).
pub(crate) async fn connect_tcp<'a, T: TcpConnect, D: Dns>(
    tcp: &'a T,
    dns: &D,
    url: &BaseUrl<'_>,
    connect_deadline: Instant,
) -> Result<T::Connection<'a>, AttemptFailure> {
    let host = url.host_unbracketed();
    let ip = match ipv4_literal(host) {
        Some(ip) => core::net::IpAddr::V4(ip),
        None => {
            // A name, or an IPv6 literal (written in brackets), which the stack parses itself:
            // embassy-net and std do, and only a stack with IPv6 could reach the address.
            let kind = if host.bytes().any(|b| b == b':') {
                AddrType::IPv6
            } else {
                AddrType::Either
            };
            within(
                connect_deadline,
                TimeoutKind::Connect,
                dns.get_host_by_name(host, kind),
            )
            .await?
            .map_err(|_| AttemptFailure::NameNotResolved)?
        }
    };
    let addr = core::net::SocketAddr::new(ip, url.port());
    within(connect_deadline, TimeoutKind::Connect, tcp.connect(addr))
        .await?
        .map_err(|e| AttemptFailure::Network(embedded_io::Error::kind(&e)))
}

/// A dotted IPv4 host (four numbers 0–255 of 1–3 digits), parsed by hand in one pass over
/// its bytes (core's address parser costs ~2 KiB of flash, `str::split` a few hundred bytes).
fn ipv4_literal(host: &str) -> Option<core::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let (mut i, mut digits) = (0usize, 0u8);
    for b in host.bytes() {
        if b == b'.' && digits > 0 && i < 3 {
            i += 1;
            digits = 0;
        } else if b.is_ascii_digit() && digits < 3 {
            let o = octets.get_mut(i)?;
            *o = u8::try_from(u16::from(*o) * 10 + u16::from(b - b'0')).ok()?;
            digits += 1;
        } else {
            return None;
        }
    }
    (i == 3 && digits > 0).then_some(core::net::Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;
    use core::net::{IpAddr, SocketAddr};
    use std::vec::Vec;

    use embedded_nal_async::{AddrType, Dns, TcpConnect};
    use steadyllm_core::http::BaseUrl;

    use super::{connect_tcp, ipv4_literal};

    /// Records the lookups and connects; resolves every name to 10.0.0.2 or ::2.
    #[derive(Default)]
    struct Recorder {
        lookups: RefCell<Vec<(std::string::String, &'static str)>>,
        connects: RefCell<Vec<SocketAddr>>,
    }

    impl Dns for Recorder {
        type Error = embedded_io::ErrorKind;

        async fn get_host_by_name(&self, host: &str, t: AddrType) -> Result<IpAddr, Self::Error> {
            let (kind, ip) = match t {
                AddrType::IPv6 => ("v6", IpAddr::from([0, 0, 0, 0, 0, 0, 0, 2u16])),
                AddrType::IPv4 => ("v4", IpAddr::from([10, 0, 0, 2])),
                AddrType::Either => ("either", IpAddr::from([10, 0, 0, 2])),
            };
            self.lookups.borrow_mut().push((host.into(), kind));
            Ok(ip)
        }

        async fn get_host_by_address(&self, _: IpAddr, _: &mut [u8]) -> Result<usize, Self::Error> {
            Err(embedded_io::ErrorKind::Unsupported)
        }
    }

    impl TcpConnect for Recorder {
        type Error = embedded_io::ErrorKind;
        type Connection<'a> = Closed;

        async fn connect(&self, remote: SocketAddr) -> Result<Self::Connection<'_>, Self::Error> {
            self.connects.borrow_mut().push(remote);
            Ok(Closed)
        }
    }

    /// A connection that is closed at once.
    struct Closed;

    impl embedded_io_async::ErrorType for Closed {
        type Error = embedded_io::ErrorKind;
    }

    impl embedded_io_async::Read for Closed {
        async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
            Ok(0)
        }
    }

    impl embedded_io_async::Write for Closed {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[test]
    fn ipv4_literals_skip_dns_names_and_ipv6_literals_go_to_the_stack() {
        let stack = Recorder::default();
        let far = embassy_time::Instant::now() + embassy_time::Duration::from_secs(5);
        for url in [
            "http://10.0.0.1:8080/v1",
            "http://[::1]:8080/v1",
            "https://api.example.com/v1",
        ] {
            let url = BaseUrl::parse(url).expect("valid");
            embassy_futures::block_on(connect_tcp(&stack, &stack, &url, far)).expect("connects");
        }
        assert_eq!(
            *stack.lookups.borrow(),
            [("::1".into(), "v6"), ("api.example.com".into(), "either")]
        );
        assert_eq!(
            *stack.connects.borrow(),
            [
                "10.0.0.1:8080".parse().expect("addr"),
                "[::2]:8080".parse().expect("addr"),
                "10.0.0.2:443".parse().expect("addr"),
            ]
        );
    }

    #[test]
    fn ipv4_literals() {
        assert_eq!(ipv4_literal("127.0.0.1"), Some([127, 0, 0, 1].into()));
        assert_eq!(ipv4_literal("255.255.255.255"), Some([255; 4].into()));
        for not_ip in [
            "::1",
            "::ffff:1.2.3.4",
            "localhost",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "api.openai.com",
            "",
        ] {
            assert_eq!(ipv4_literal(not_ip), None, "{not_ip}");
        }
    }
}
