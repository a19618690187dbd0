//! End-to-end: a real embassy-net stack on a TAP device inside a network namespace talks TCP to a
//! tokio server on the kernel side of the TAP. Needs root; prints `SKIPPED: <reason>` otherwise.
#![cfg(target_os = "linux")]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embedded_io_async::{Read, Write};
use embedded_nal_async::{AddrType, Dns, TcpConnect};
use steadyllm_tests::netns::{EmbassyNet, LiteralDns, NetNs, RunError, STACK_ADDR, join_timeout};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const REQUEST: &[u8] = b"ping from embassy-net\n";

/// `None` (after printing the skip reason) when namespaces cannot be made here.
fn namespace_or_skip() -> Option<NetNs> {
    if let Err(why) = NetNs::available() {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    Some(NetNs::new().expect("NetNs::available() said yes, but creating a namespace failed"))
}

#[test]
fn embassy_net_tcp_client_talks_to_a_server_in_the_namespace() {
    let started = Instant::now();
    let Some(ns) = namespace_or_skip() else {
        return;
    };
    let name = ns.name().to_string();
    assert!(
        NetNs::exists(&name).unwrap(),
        "{name} not in `ip netns list`"
    );

    // Server: tokio inside the namespace, on the kernel side of the TAP. It answers one line.
    let listener = ns.tcp_listener(0).expect("listener inside the namespace");
    let server_addr = listener.local_addr().unwrap();
    assert_eq!(server_addr.ip(), IpAddr::V4(ns.host_addr()));
    listener.set_nonblocking(true).unwrap();
    let server = ns
        .spawn_tokio(move || async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (sock, peer) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
                .await
                .expect("no connection within 10 s")
                .expect("accept");
            let mut sock = BufReader::new(sock);
            let mut line = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), sock.read_until(b'\n', &mut line))
                .await
                .expect("no request line within 10 s")
                .expect("read request");
            let mut reply = b"pong: ".to_vec();
            reply.extend_from_slice(&line);
            sock.get_mut().write_all(&reply).await.expect("write reply");
            sock.get_mut().shutdown().await.expect("shutdown");
            (peer, line)
        })
        .expect("server thread inside the namespace");

    // Client: embassy-net on the TAP, through embedded-nal-async's TcpConnect.
    let net = EmbassyNet::start(&ns).expect("embassy-net stack on the TAP");
    let reply = net
        .run(Duration::from_secs(10), move |stack| async move {
            stack.wait_config_up().await;
            let host = server_addr.ip().to_string();
            let ip = LiteralDns
                .get_host_by_name(&host, AddrType::IPv4)
                .await
                .map_err(|e| format!("resolve {host}: {e}"))?;
            let state: TcpClientState<1, 1024, 1024> = TcpClientState::new();
            let client = TcpClient::new(stack, &state);
            let mut conn = client
                .connect(SocketAddr::new(ip, server_addr.port()))
                .await
                .map_err(|e| format!("connect {server_addr}: {e:?}"))?;
            conn.write_all(REQUEST)
                .await
                .map_err(|e| format!("write: {e:?}"))?;
            conn.flush().await.map_err(|e| format!("flush: {e:?}"))?;
            let mut reply = Vec::new();
            let mut buf = [0u8; 256];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => reply.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(format!("read: {e:?}")),
                }
            }
            Ok(reply)
        })
        .expect("embassy job")
        .expect("TCP exchange over embassy-net");
    assert_eq!(reply, [b"pong: ".as_slice(), REQUEST].concat());

    let (peer, line) = join_timeout(server, Duration::from_secs(5)).expect("server thread");
    assert_eq!(line, REQUEST);
    assert_eq!(
        peer.ip(),
        IpAddr::V4(STACK_ADDR),
        "server saw the embassy stack's address"
    );

    net.shutdown().expect("embassy stack stops");
    drop(ns);
    assert!(
        !NetNs::exists(&name).unwrap(),
        "{name} still listed after drop"
    );
    eprintln!(
        "netns e2e: ran inside namespace {name}: embassy-net {STACK_ADDR} -> tokio {server_addr}, \
         {} reply bytes, namespace deleted, {:?}",
        reply.len(),
        started.elapsed()
    );
}

#[test]
fn namespace_is_deleted_when_its_owner_panics() {
    if let Err(why) = NetNs::available() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let owner = std::thread::spawn(move || {
        let ns = NetNs::new().expect("namespace");
        tx.send(ns.name().to_string()).unwrap();
        panic!("deliberate panic while owning {}", ns.name());
    });
    let name = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("namespace name");
    assert!(
        join_timeout(owner, Duration::from_secs(10)).is_err(),
        "owner should have panicked"
    );
    assert!(!NetNs::exists(&name).unwrap(), "{name} survived the panic");
    eprintln!("netns e2e: namespace {name} deleted while unwinding");
}

#[test]
fn embassy_job_timeout_and_panic_are_contained_and_the_stack_stays_usable() {
    let Some(ns) = namespace_or_skip() else {
        return;
    };
    let net = EmbassyNet::start(&ns).expect("embassy-net stack");
    let started = Instant::now();
    let out = net.run(Duration::from_millis(200), |_stack| async {
        embassy_time::Timer::after_secs(60).await;
    });
    assert_eq!(out, Err(RunError::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let up = net
        .run(Duration::from_secs(5), |stack| async move {
            stack.wait_config_up().await;
            stack.config_v4().map(|c| c.address.address())
        })
        .expect("second job");
    assert_eq!(up, Some(STACK_ADDR));
    net.shutdown().expect("embassy stack stops");
    eprintln!(
        "netns e2e: job timeout and panic contained in namespace {}",
        ns.name()
    );
}

#[test]
fn literal_dns_resolves_ip_literals_only() {
    let dns = LiteralDns;
    let run = |host: &'static str, t: AddrType| {
        embassy_futures::block_on(async move { dns.get_host_by_name(host, t).await })
    };
    assert_eq!(
        run("192.168.69.100", AddrType::Either),
        Ok("192.168.69.100".parse().unwrap())
    );
    assert_eq!(run("[::1]", AddrType::IPv6), Ok("::1".parse().unwrap()));
    assert!(run("::1", AddrType::IPv4).is_err());
    assert!(run("example.com", AddrType::Either).is_err());
    let mut buf = [0u8; 64];
    let n =
        embassy_futures::block_on(dns.get_host_by_address("10.0.0.1".parse().unwrap(), &mut buf))
            .unwrap();
    assert_eq!(&buf[..n], b"10.0.0.1");
}

#[test]
fn reqwless_over_embassy_net_gets_from_hyper_in_the_namespace() {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use reqwless::client::HttpClient;
    use reqwless::request::{Method, RequestBuilder};

    let Some(ns) = namespace_or_skip() else {
        return;
    };
    let listener = ns.tcp_listener(0).expect("listener inside the namespace");
    let server_addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    // hyper (HTTP/1) on tokio inside the namespace; one connection, reports the Host it saw.
    let server = ns
        .spawn_tokio(move || async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (sock, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
                .await
                .expect("no connection within 10 s")
                .expect("accept");
            let seen_host = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let seen = seen_host.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let host = req.headers().get("host").and_then(|h| h.to_str().ok());
                *seen.lock().unwrap() = host.unwrap_or_default().to_string();
                async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"hello from hyper"),
                    )))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(sock), service);
            tokio::time::timeout(Duration::from_secs(10), conn)
                .await
                .expect("connection still open after 10 s")
                .expect("serve connection");
            seen_host.lock().unwrap().clone()
        })
        .expect("server thread inside the namespace");

    let net = EmbassyNet::start(&ns).expect("embassy-net stack on the TAP");
    let (status, body) = net
        .run(Duration::from_secs(10), move |stack| async move {
            stack.wait_config_up().await;
            let state: TcpClientState<1, 1024, 1024> = TcpClientState::new();
            let tcp = TcpClient::new(stack, &state);
            let mut http = HttpClient::new(&tcp, &LiteralDns);
            let url = format!("http://{server_addr}/v1/models");
            // reqwless writes the Host header without the port: set it. `Connection: close`
            // because embassy-net drops a socket without sending its FIN (see netns docs), so
            // the server would otherwise wait for the next request on this connection.
            let host = server_addr.to_string();
            let mut rx = [0u8; 1024];
            let handle = http.request(Method::GET, &url).await;
            let mut handle = handle
                .map_err(|e| format!("request: {e:?}"))?
                .host(&host)
                .headers(&[("Connection", "close")]);
            let response = handle
                .send(&mut rx)
                .await
                .map_err(|e| format!("send: {e:?}"))?;
            let status = response.status.0;
            let body = response
                .body()
                .read_to_end()
                .await
                .map_err(|e| format!("body: {e:?}"))?
                .to_vec();
            Ok::<_, String>((status, body))
        })
        .expect("embassy job")
        .expect("HTTP GET over embassy-net");
    assert_eq!(status, 200);
    assert_eq!(body, b"hello from hyper");
    net.shutdown().expect("embassy stack stops");
    let host = join_timeout(server, Duration::from_secs(5)).expect("server thread");
    assert_eq!(host, server_addr.to_string());
    eprintln!(
        "netns e2e: reqwless over embassy-net got {status} from hyper at {server_addr} in {}",
        ns.name()
    );
}
