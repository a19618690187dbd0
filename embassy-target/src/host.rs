//! The host transport: the operating system's sockets behind the embedded-nal-async traits
//! (std-embedded-nal-async), so the same client code runs on a PC — for the `chat` example
//! and the end-to-end tests.
//!
//! One fix on top: a std socket answers a zero-byte read by waiting for data that never comes
//! (reqwless does such a read after the end of a chunked body). The client never
//! asks for zero bytes, but [`HostConnection`] answers an empty read with `Ok(0)` at once for
//! any other code on the same connection type.

use core::net::{IpAddr, SocketAddr};

use embedded_io_async::{ErrorType, Read, Write};
use embedded_nal_async::{AddrType, Dns, TcpConnect};

/// The host's TCP stack and resolver.
#[derive(Clone, Default)]
pub struct HostStack {
    inner: std_embedded_nal_async::Stack,
}

impl HostStack {
    /// The operating system's stack.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A host TCP connection whose empty reads return at once.
pub struct HostConnection(<std_embedded_nal_async::Stack as TcpConnect>::Connection<'static>);

impl ErrorType for HostConnection {
    type Error = std::io::Error;
}

impl Read for HostConnection {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0.read(buf).await
    }
}

impl Write for HostConnection {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().await
    }
}

impl TcpConnect for HostStack {
    type Error = std::io::Error;
    type Connection<'a> = HostConnection;

    async fn connect(&self, remote: SocketAddr) -> Result<Self::Connection<'_>, Self::Error> {
        self.inner.connect(remote).await.map(HostConnection)
    }
}

impl Dns for HostStack {
    type Error = std::io::Error;

    async fn get_host_by_name(
        &self,
        host: &str,
        addr_type: AddrType,
    ) -> Result<IpAddr, Self::Error> {
        self.inner.get_host_by_name(host, addr_type).await
    }

    async fn get_host_by_address(
        &self,
        addr: IpAddr,
        result: &mut [u8],
    ) -> Result<usize, Self::Error> {
        self.inner.get_host_by_address(addr, result).await
    }
}
