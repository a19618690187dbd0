//! A real embassy-net TCP/IP stack on a TAP device inside a throw-away network namespace.
//!
//! [`NetNs`] creates a uniquely named namespace (`ip netns add steadyllm-<pid>-<n>`) with `lo` up
//! and a TAP device whose kernel side has [`NetNs::host_addr`]; dropping it deletes the namespace.
//! Code runs inside it on threads that `setns()` into it first ([`NetNs::spawn`],
//! [`NetNs::spawn_tokio`]); sockets keep the namespace they were created in, so a listener made by
//! [`NetNs::tcp_listener`] can be served from any runtime.
//!
//! [`EmbassyNet`] opens the TAP device from a thread inside the namespace and runs an embassy
//! executor (`platform-std`) there with an embassy-net stack at [`EmbassyNet::addr`]; tests hand it
//! async closures with [`EmbassyNet::run`]:
//!
//! ```no_run
//! use steadyllm_tests::netns::{EmbassyNet, NetNs};
//! use std::time::Duration;
//!
//! if let Err(why) = NetNs::available() {
//!     eprintln!("SKIPPED: {why}");
//!     return;
//! }
//! let ns = NetNs::new().unwrap();
//! let listener = ns.tcp_listener(0).unwrap(); // on ns.host_addr(), inside the namespace
//! let server = listener.local_addr().unwrap();
//! let net = EmbassyNet::start(&ns).unwrap();
//! let up = net
//!     .run(Duration::from_secs(5), move |stack| async move {
//!         stack.wait_config_up().await;
//!         let _ = server; // connect with embassy_net::tcp::client::TcpClient ...
//!         stack.is_config_up()
//!     })
//!     .unwrap();
//! assert!(up);
//! ```
//!
//! Trap: dropping an embassy-net TCP socket (also `TcpClient`'s connections, e.g. inside reqwless)
//! removes it at once, so its FIN is never sent: the peer does not see the close. Servers in
//! these tests should close themselves (`Connection: close`, one response per connection) or
//! bound their reads with timeouts. Data the peer sends afterwards is answered with a RST.
//!
//! Needs Linux, root (CAP_SYS_ADMIN + CAP_NET_ADMIN), `ip` from iproute2 and `/dev/net/tun`;
//! [`NetNs::available`] says which one is missing.

use core::future::Future;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::pin::Pin;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use embassy_executor::{Executor, Spawner};
use embassy_futures::select::{Either, select};
use embassy_net::{Config, Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;

/// Name of the TAP device created inside every namespace.
pub const TAP_NAME: &str = "tap0";
/// Address of the kernel side of the TAP device (servers bind here).
pub const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
/// Address of the embassy-net stack started by [`EmbassyNet::start`].
pub const STACK_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
/// Prefix length of the TAP subnet (192.168.69.0/24).
pub const PREFIX_LEN: u8 = 24;

const NETNS_DIR: &str = "/run/netns";
/// Upper bound for every `ip` invocation.
const IP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping [`EmbassyNet`] may take to leave its thread.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Sockets of one embassy-net stack (TCP client connections, plus room for the caller).
const STACK_SOCKETS: usize = 8;

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A network namespace with a TAP device, deleted on drop (also while unwinding from a panic).
///
/// Layout inside the namespace: `lo` up, [`TAP_NAME`] up with [`HOST_ADDR`]/[`PREFIX_LEN`] on the
/// kernel side. The other side of the TAP is opened by [`EmbassyNet`].
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Whether namespaces with TAP devices can be made here; `Err` says why not (to print as a
    /// skip reason).
    pub fn available() -> Result<(), String> {
        if !cfg!(target_os = "linux") {
            return Err("network namespaces need Linux".into());
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let caps = effective_caps();
        const CAP_NET_ADMIN: u32 = 12;
        const CAP_SYS_ADMIN: u32 = 21;
        let missing: Vec<&str> = [
            (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
            (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        ]
        .into_iter()
        .filter(|(bit, _)| caps.is_some_and(|c| c & (1 << bit) == 0))
        .map(|(_, name)| name)
        .collect();
        if euid != 0 {
            return Err(format!(
                "not root (euid {euid}): ip netns and TAP devices need root"
            ));
        }
        if !missing.is_empty() {
            return Err(format!(
                "root but without {} (unprivileged container?)",
                missing.join(" and ")
            ));
        }
        match Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => return Err(format!("`ip -V` failed ({s}); install iproute2")),
            Err(e) => return Err(format!("no `ip` command ({e}); install iproute2")),
        }
        if !Path::new("/dev/net/tun").exists() {
            return Err("no /dev/net/tun (tun module not loaded or device not passed in)".into());
        }
        Ok(())
    }

    /// Creates a namespace named `steadyllm-<pid>-<n>` with `lo` up and [`TAP_NAME`] up at
    /// [`HOST_ADDR`]/[`PREFIX_LEN`].
    pub fn new() -> io::Result<NetNs> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("steadyllm-{}-{id}", std::process::id());
        if let Err(first) = ip(&["netns", "add", &name]) {
            // A stale namespace of an earlier process with the same pid: remove it, try again.
            if Path::new(NETNS_DIR).join(&name).exists() {
                let _ = ip(&["netns", "delete", &name]);
                ip(&["netns", "add", &name])?;
            } else {
                return Err(first);
            }
        }
        // From here on, Drop deletes the namespace if a step fails.
        let ns = NetNs { name };
        let addr = format!("{HOST_ADDR}/{PREFIX_LEN}");
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        ns.exec(&["ip", "tuntap", "add", "name", TAP_NAME, "mode", "tap"])?;
        ns.exec(&["ip", "addr", "add", &addr, "dev", TAP_NAME])?;
        ns.exec(&["ip", "link", "set", TAP_NAME, "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as listed by `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file (`/run/netns/<name>`).
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Name of the TAP device inside the namespace.
    pub fn tap_name(&self) -> &str {
        TAP_NAME
    }

    /// Address of the kernel side of the TAP device: where servers inside the namespace listen.
    pub fn host_addr(&self) -> Ipv4Addr {
        HOST_ADDR
    }

    /// Whether a namespace called `name` shows up in `ip netns list`.
    pub fn exists(name: &str) -> io::Result<bool> {
        let out = run_bounded(Command::new("ip").args(["netns", "list"]))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // Lines look like `name` or `name (id: 3)`.
        Ok(text
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name)))
    }

    /// Runs a command inside the namespace (`ip netns exec <name> ...`), failing on a non-zero
    /// exit; returns its stdout.
    pub fn exec(&self, argv: &[&str]) -> io::Result<String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        let out = run_bounded(&mut cmd)?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`ip netns exec {} {}` failed ({}): {}",
                self.name,
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Moves the calling thread into the namespace (for its lifetime: a thread's network
    /// namespace is per-thread). Prefer [`NetNs::spawn`].
    pub fn enter_current_thread(&self) -> io::Result<()> {
        let file = File::open(self.path())?;
        // SAFETY: setns takes a valid namespace fd, kept open by `file` during the call.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Runs `f` on a new thread inside the namespace. Fails (without running `f`) when the thread
    /// cannot enter the namespace.
    pub fn spawn<F, T>(&self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let file = File::open(self.path())?;
        let (tx, rx) = mpsc::sync_channel::<io::Result<()>>(1);
        let handle = thread::Builder::new()
            .name(format!("netns {}", self.name))
            .spawn(move || {
                // SAFETY: setns takes a valid namespace fd, kept open by `file` during the call.
                let entered = if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                };
                drop(file);
                let ok = entered.is_ok();
                let _ = tx.send(entered);
                if !ok {
                    // Never run caller code outside the namespace.
                    panic!("setns failed; not running the closure");
                }
                f()
            })?;
        match rx.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(io::Error::new(
                    e.kind(),
                    format!("setns into {}: {e}", self.name),
                ))
            }
            Err(_) => Err(io::Error::other("namespace thread died before setns")),
        }
    }

    /// Runs the future made by `f` on a current-thread tokio runtime (IO and time enabled) on a
    /// new thread inside the namespace, so every socket it opens lives in the namespace.
    pub fn spawn_tokio<F, Fut, T>(&self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime inside the namespace")
                .block_on(f())
        })
    }

    /// A blocking std listener on [`NetNs::host_addr`]`:port` (0 picks a free port), created
    /// inside the namespace. Sockets keep their namespace, so it may be served from any thread
    /// or runtime (for tokio: `set_nonblocking(true)` then `tokio::net::TcpListener::from_std`).
    pub fn tcp_listener(&self, port: u16) -> io::Result<std::net::TcpListener> {
        let addr = SocketAddr::new(IpAddr::V4(self.host_addr()), port);
        let handle = self.spawn(move || std::net::TcpListener::bind(addr))?;
        join_timeout(handle, IP_TIMEOUT).map_err(io::Error::other)?
    }

    /// Like [`NetNs::tcp_listener`], as a tokio listener; call it inside a tokio runtime.
    pub fn tokio_listener(&self, port: u16) -> io::Result<tokio::net::TcpListener> {
        let listener = self.tcp_listener(port)?;
        listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(listener)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            eprintln!("netns: could not delete namespace {}: {e}", self.name);
        }
    }
}

/// Joins `handle`, giving up after `timeout` (the thread is then left running, detached).
/// `Err` says whether it timed out or panicked.
pub fn join_timeout<T>(handle: JoinHandle<T>, timeout: Duration) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return Err(format!(
                "thread {:?} still running after {timeout:?}",
                handle.thread().name().unwrap_or("?")
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
    handle
        .join()
        .map_err(|p| format!("thread panicked: {}", panic_text(&*p)))
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string payload)".to_string()
    }
}

/// Effective capability bits of this process (`CapEff` in /proc/self/status).
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// `ip <args>`, failing on a non-zero exit.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = run_bounded(Command::new("ip").args(args))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs `cmd` to completion, killing it after [`IP_TIMEOUT`].
fn run_bounded(cmd: &mut Command) -> io::Result<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + IP_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            return child.wait_with_output();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{cmd:?} did not finish within {IP_TIMEOUT:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(2));
    }
}

type Job = Box<dyn FnOnce(Stack<'static>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;
type Jobs = Channel<CriticalSectionRawMutex, Job, 1>;
type Stop = Signal<CriticalSectionRawMutex, ()>;

/// Why [`EmbassyNet::run`] returned no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The future did not complete within the timeout (it was cancelled).
    Timeout,
    /// The future panicked (the message); the stack keeps running.
    Panicked(String),
    /// The stack's thread is gone.
    Stopped,
    /// The previous job, abandoned after its timeout, is still being cancelled.
    Busy,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Timeout => f.write_str("embassy job timed out"),
            RunError::Panicked(msg) => write!(f, "embassy job panicked: {msg}"),
            RunError::Stopped => f.write_str("embassy stack thread stopped"),
            RunError::Busy => f.write_str("embassy stack still cancelling the previous job"),
        }
    }
}

impl std::error::Error for RunError {}

/// An embassy-net stack on the namespace's TAP device, driven by an embassy executor
/// (`platform-std`) on its own thread inside the namespace.
///
/// The stack has [`STACK_ADDR`]/[`PREFIX_LEN`] (static, no gateway, no DNS servers) and room for
/// a few sockets. Dropping the handle stops the executor, closes the TAP device and joins the
/// thread (bounded).
pub struct EmbassyNet {
    jobs: Arc<Jobs>,
    stop: Arc<Stop>,
    /// Serialises [`EmbassyNet::run`] calls (one job at a time on the executor).
    busy: Mutex<()>,
    thread: Option<JoinHandle<()>>,
    addr: Ipv4Addr,
}

impl fmt::Debug for EmbassyNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbassyNet")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl EmbassyNet {
    /// Starts a stack at [`STACK_ADDR`] on the namespace's TAP device.
    pub fn start(ns: &NetNs) -> io::Result<EmbassyNet> {
        Self::start_at(ns, STACK_ADDR)
    }

    /// Starts a stack at `addr`/[`PREFIX_LEN`] (which must be in the TAP's subnet and differ
    /// from [`HOST_ADDR`]) on the namespace's TAP device.
    pub fn start_at(ns: &NetNs, addr: Ipv4Addr) -> io::Result<EmbassyNet> {
        let jobs: Arc<Jobs> = Arc::new(Channel::new());
        let stop: Arc<Stop> = Arc::new(Signal::new());
        let (ready_tx, ready_rx) = mpsc::sync_channel::<io::Result<()>>(1);
        let tap = ns.tap_name().to_string();
        let (task_jobs, task_stop) = (jobs.clone(), stop.clone());
        let thread = ns.spawn(move || {
            // The TAP must be opened from inside the namespace (and its MTU is asked of a socket
            // made here).
            let device = match TunTapDevice::new(&tap) {
                Ok(d) => d,
                Err(e) => {
                    let _ =
                        ready_tx.send(Err(io::Error::new(e.kind(), format!("open {tap}: {e}"))));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            run_executor(device, addr, task_jobs, task_stop);
        })?;
        match ready_rx.recv_timeout(IP_TIMEOUT) {
            Ok(Ok(())) => Ok(EmbassyNet {
                jobs,
                stop,
                busy: Mutex::new(()),
                thread: Some(thread),
                addr,
            }),
            Ok(Err(e)) => {
                let _ = join_timeout(thread, STOP_TIMEOUT);
                Err(e)
            }
            Err(_) => Err(io::Error::other("embassy stack thread did not start")),
        }
    }

    /// The stack's own IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Runs the future made by `f` on the executor (inside the namespace) and blocks until it
    /// completes, at most `timeout` (then it is dropped and [`RunError::Timeout`] returned).
    ///
    /// The future gets the stack (`Copy`, `'static`) and may borrow locals it owns, e.g. a
    /// `TcpClientState` for a `TcpClient` (its sockets come out of the stack's pool of 8).
    /// The closure is sent to the executor thread; the future is made and polled there, so it
    /// need not be `Send`. Calls are served one at a time. A panic in the future is caught and
    /// returned as [`RunError::Panicked`] (the panic hook still prints it).
    pub fn run<F, Fut, T>(&self, timeout: Duration, f: F) -> Result<T, RunError>
    where
        F: FnOnce(Stack<'static>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let _serial = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let (tx, rx) = mpsc::sync_channel::<Result<T, RunError>>(1);
        let limit = embassy_time::Duration::from_micros(timeout.as_micros() as u64);
        let job: Job = Box::new(move |stack| {
            Box::pin(async move {
                let out = match embassy_time::with_timeout(limit, CatchUnwind(Box::pin(f(stack))))
                    .await
                {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(msg)) => Err(RunError::Panicked(msg)),
                    Err(embassy_time::TimeoutError) => Err(RunError::Timeout),
                };
                let _ = tx.send(out);
            })
        });
        if self.jobs.try_send(job).is_err() {
            return Err(RunError::Busy);
        }
        // The executor enforces `timeout`; the grace covers a stuck executor thread.
        match rx.recv_timeout(timeout + Duration::from_secs(2)) {
            Ok(out) => out,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(RunError::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(RunError::Stopped),
        }
    }

    /// Stops the executor and joins its thread (bounded); `Err` says what went wrong. Dropping
    /// does the same, ignoring the outcome.
    pub fn shutdown(mut self) -> Result<(), String> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), String> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.signal(());
        join_timeout(thread, STOP_TIMEOUT)
    }
}

impl Drop for EmbassyNet {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            eprintln!("netns: embassy stack did not stop cleanly: {e}");
        }
    }
}

/// Polls the inner future, turning a panic into `Err(message)`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(core::task::Poll::Ready(v)) => core::task::Poll::Ready(Ok(v)),
            Ok(core::task::Poll::Pending) => core::task::Poll::Pending,
            Err(payload) => core::task::Poll::Ready(Err(panic_text(&*payload))),
        }
    }
}

/// Body of the stack thread: one task that runs the stack and the jobs until `stop` fires, then
/// returns (dropping the TAP device) so the executor loop ends.
fn run_executor(device: TunTapDevice, addr: Ipv4Addr, jobs: Arc<Jobs>, stop: Arc<Stop>) {
    let config = Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(addr, PREFIX_LEN),
        gateway: None,
        dns_servers: Default::default(),
    });
    // The executor, its task storage and the stack's resources must be 'static: each stack
    // leaks a few kilobytes, which is fine for tests.
    let resources: &'static mut StackResources<STACK_SOCKETS> =
        Box::leak(Box::new(StackResources::new()));
    let seed = seed();
    let (stack, mut runner) = embassy_net::new(device, config, resources, seed);
    let finished = Arc::new(AtomicBool::new(false));
    let task_finished = finished.clone();
    let main = async move {
        let serve = async {
            loop {
                match select(stop.wait(), jobs.receive()).await {
                    Either::First(()) => break,
                    Either::Second(job) => {
                        // A job ends on its own timeout, or early when the stack is stopped.
                        if let Either::First(()) = select(stop.wait(), job(stack)).await {
                            break;
                        }
                    }
                }
            }
        };
        let _ = select(runner.run(), serve).await;
        drop(runner); // closes the TAP device
        task_finished.store(true, Ordering::SeqCst);
    };
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run_until(
        |spawner| spawn_leaked(spawner, main),
        || finished.load(Ordering::SeqCst),
    );
}

/// Spawns `fut` as a task whose storage is leaked (a `#[task]` pool would be shared by all stacks
/// in the process and never freed by the never-ending runner).
fn spawn_leaked<F: Future<Output = ()> + 'static>(spawner: Spawner, fut: F) {
    let storage: &'static embassy_executor::raw::TaskStorage<F> =
        Box::leak(Box::new(embassy_executor::raw::TaskStorage::new()));
    let token = storage.spawn(|| fut).expect("fresh task storage");
    spawner.spawn(token);
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u64)
        ^ ((std::process::id() as u64) << 32)
        ^ NEXT_ID.load(Ordering::Relaxed) as u64
}

/// An [`embedded_nal_async::Dns`] that resolves IP literals only (there is no DNS server in a
/// test namespace): `"192.168.69.100"` resolves, `"example.com"` is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiteralDns;

/// The error of [`LiteralDns`]: the name is not an IP literal of the requested family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnIpLiteral;

impl fmt::Display for NotAnIpLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an IP literal (LiteralDns resolves nothing else)")
    }
}

impl std::error::Error for NotAnIpLiteral {}

impl embedded_nal_async::Dns for LiteralDns {
    type Error = NotAnIpLiteral;

    async fn get_host_by_name(
        &self,
        host: &str,
        addr_type: embedded_nal_async::AddrType,
    ) -> Result<IpAddr, NotAnIpLiteral> {
        use embedded_nal_async::AddrType;
        // Accept the bracketed IPv6 form of URLs too.
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip: IpAddr = literal.parse().map_err(|_| NotAnIpLiteral)?;
        match (addr_type, ip) {
            (AddrType::IPv4, IpAddr::V6(_)) | (AddrType::IPv6, IpAddr::V4(_)) => {
                Err(NotAnIpLiteral)
            }
            _ => Ok(ip),
        }
    }

    async fn get_host_by_address(
        &self,
        addr: IpAddr,
        result: &mut [u8],
    ) -> Result<usize, NotAnIpLiteral> {
        use std::io::Write;
        let mut cursor = io::Cursor::new(result);
        write!(cursor, "{addr}").map_err(|_| NotAnIpLiteral)?;
        Ok(cursor.position() as usize)
    }
}
