//! Prints the size of a call's future (per-call RAM besides the caller's buffers).
use steadyllm_embassy::host::HostStack;
use steadyllm_embassy::steadyllm_core::call::CallConfig;
use steadyllm_embassy::steadyllm_core::http::Endpoint;
use steadyllm_embassy::steadyllm_core::request::{ChatRequest, Message};
use steadyllm_embassy::{Buffers, Client, SharedState};

#[test]
fn report_future_size() {
    let stack = HostStack::new();
    let endpoints = [Endpoint::new("http://127.0.0.1:9/v1", None).expect("endpoint")];
    let cfg = CallConfig::default();
    let shared: SharedState = SharedState::new(1, &cfg);
    let mut client: Client<'_, _, _> = Client::new(&stack, &stack, &endpoints, &shared, cfg, 1);
    let messages = [Message::user("hi")];
    let request = ChatRequest::new("m", &messages);
    let (mut body, mut head, mut response) = ([0u8; 64], [0u8; 64], [0u8; 64]);
    let mut bufs = Buffers::new(&mut body, &mut head, &mut response);
    let fut = client.chat(&request, &mut bufs, |_| {});
    eprintln!("chat future: {} bytes", core::mem::size_of_val(&fut));
    eprintln!(
        "client: {} bytes",
        core::mem::size_of::<Client<'_, HostStack, HostStack>>()
    );
    drop(fut);
}
