//! The connection guard: the only code that touches client sockets.
//!
//! rouille's HTTP layer (tiny_http) has no limits of its own: it keeps a thread per connection
//! for as long as the client likes, sets no socket timeouts, reads request heads of any size,
//! and its accept loop ends for good on the first accept error. So the guard accepts on the
//! public address and relays each connection to rouille, which listens on a loopback port.
//!
//! Invariants a reviewer can check in this file alone:
//! - at most `max_connections` client connections are open; a connection beyond that gets a
//!   503 and is closed at once;
//! - a connection idle between requests is closed after `idle_timeout`; a request that has not
//!   been answered `request_timeout` after its first byte is cut off (slow clients);
//! - a request head over `HEAD_LIMIT` bytes, or a request over `HEAD_LIMIT + BODY_LIMIT`, is
//!   cut off before it all reaches rouille;
//! - writes to a client that does not read time out;
//! - the accept loop never ends on an error: it logs it, waits, and goes on;
//! - on `stop`, idle connections are closed and busy ones right after their response.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::http::BODY_LIMIT;

/// Largest request line plus headers, in bytes.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// Slack for chunked-encoding framing on top of the body limit.
const FRAMING: usize = 4 * 1024;
/// How often a relay wakes to check its timers and the stop flag.
const TICK: Duration = Duration::from_millis(250);
/// How long a write to a client may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Relay threads need little stack: a buffer and a few frames.
const STACK: usize = 128 * 1024;

const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Retry-After: 1\r\nConnection: close\r\nContent-Length: 77\r\n\r\n\
{\"detail\":\"Too many connections\",\"code\":\"unavailable\",\"request_id\":\"guard\"}";

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

/// A running guard; `stop` drains it.
pub struct Guard {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    stopping: AtomicBool,
    open: AtomicUsize,
}

impl Guard {
    /// Accepts on `listener` and relays to `backend` (rouille on loopback).
    pub fn start(listener: TcpListener, backend: SocketAddr, limits: Limits) -> io::Result<Guard> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { stopping: AtomicBool::new(false), open: AtomicUsize::new(0) });
        let accepting = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("guard-accept".to_owned())
            .spawn(move || accept_loop(&listener, backend, limits, &accepting))?;
        Ok(Guard { addr, shared, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Stops accepting, then waits up to `drain` for open connections to finish.
    /// Returns whether they all did.
    pub fn stop(&mut self, drain: Duration) -> bool {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&wake_address(self.addr), Duration::from_secs(1)); // unblock accept()
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let deadline = Instant::now() + drain;
        while self.open_connections() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        self.open_connections() == 0
    }
}

/// Where to connect to reach our own listener (a wildcard address is reached on loopback).
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let mut wake = addr;
    if addr.ip().is_unspecified() {
        wake.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    wake
}

fn accept_loop(listener: &TcpListener, backend: SocketAddr, limits: Limits, shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: wait, go on.
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        if shared.open.load(Ordering::SeqCst) >= limits.max_connections {
            log::warn!("connection refused: {} connections open", limits.max_connections);
            let _ = client.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = (&client).write_all(TOO_MANY);
            continue;
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        let counted = Counted(Arc::clone(shared));
        let spawned = thread::Builder::new().name("relay".to_owned()).stack_size(STACK).spawn(move || {
            if let Err(e) = relay(client, backend, limits, &counted.0) {
                log::debug!("connection ended: {e}");
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}"); // the connection was dropped
        }
    }
}

/// Decrements the open-connection count when a relay ends, however it ends.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a relay ended.
enum End {
    /// The client finished sending, or the guard is draining: rouille may finish its response.
    Finished,
    /// A limit was hit or a socket failed: close both sides now.
    Cut,
}

/// Client to rouille, in this thread; rouille to client, in a second one started on the first
/// request byte (an idle connection costs one thread).
fn relay(client: TcpStream, backend_addr: SocketAddr, limits: Limits, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(TICK))?;
    client.set_write_timeout(Some(WRITE_TIMEOUT))?;
    client.set_nodelay(true)?;
    let responses = Arc::new(AtomicU64::new(0)); // chunks rouille has sent so far
    let mut backend: Option<TcpStream> = None;
    let mut request: Option<Request> = None; // the request in progress, if any
    let mut idle_since = Instant::now();
    let mut buf = [0u8; 8192];
    let end = loop {
        if request.as_ref().is_some_and(|r| responses.load(Ordering::SeqCst) > r.responses_before) {
            request = None; // its response has started: the connection is between requests
            idle_since = Instant::now();
        }
        if request.is_none() && shared.stopping.load(Ordering::SeqCst) {
            break End::Finished; // draining: close between requests
        }
        match (&client).read(&mut buf) {
            Ok(0) => break End::Finished,
            Ok(n) => {
                let current = request.get_or_insert_with(|| Request::new(responses.load(Ordering::SeqCst)));
                if let Err(why) = current.feed(&buf[..n]) {
                    log::warn!("connection cut off: {why}");
                    break End::Cut;
                }
                let stream = match &mut backend {
                    Some(stream) => stream,
                    None => backend.insert(connect_backend(backend_addr, &client, &responses)?),
                };
                if stream.write_all(&buf[..n]).is_err() {
                    break End::Cut;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => match &request {
                Some(r) if r.started.elapsed() > limits.request_timeout => {
                    log::warn!("connection cut off: request not complete after {:?}", limits.request_timeout);
                    break End::Cut;
                }
                None if idle_since.elapsed() > limits.idle_timeout => break End::Finished,
                _ => {}
            },
            Err(_) => break End::Cut,
        }
    };
    match (end, backend) {
        // rouille finishes the response it owes, then closes; the other thread closes the client.
        (End::Finished, Some(stream)) => stream.shutdown(Shutdown::Write),
        (End::Cut, Some(stream)) => {
            let _ = stream.shutdown(Shutdown::Both);
            client.shutdown(Shutdown::Both)
        }
        (_, None) => Ok(()),
    }
}

/// Connects to rouille and starts the thread that copies its responses to the client.
fn connect_backend(addr: SocketAddr, client: &TcpStream, responses: &Arc<AtomicU64>) -> io::Result<TcpStream> {
    let backend = TcpStream::connect(addr)?;
    backend.set_nodelay(true)?;
    let (mut from, mut to) = (backend.try_clone()?, client.try_clone()?);
    let responses = Arc::clone(responses);
    thread::Builder::new().name("relay-back".to_owned()).stack_size(STACK).spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
            responses.fetch_add(1, Ordering::SeqCst);
        }
        let _ = to.shutdown(Shutdown::Both); // also wakes the client-side reader
        let _ = from.shutdown(Shutdown::Both);
    })?;
    Ok(backend)
}

/// The limits on one request as its bytes arrive.
struct Request {
    started: Instant,
    /// The response count when this request began; a higher count means it is being answered.
    responses_before: u64,
    bytes: usize,
    /// Whether the blank line ending the head has been seen, and the last bytes before it.
    head_done: bool,
    tail: [u8; 3],
}

impl Request {
    fn new(responses_before: u64) -> Request {
        Request { started: Instant::now(), responses_before, bytes: 0, head_done: false, tail: [0; 3] }
    }

    fn feed(&mut self, data: &[u8]) -> Result<(), &'static str> {
        for &b in data {
            self.bytes += 1;
            if !self.head_done {
                self.head_done = self.tail == *b"\r\n\r" && b == b'\n';
                self.tail = [self.tail[1], self.tail[2], b];
                if !self.head_done && self.bytes > HEAD_LIMIT {
                    return Err("request head over 16 KiB");
                }
            }
        }
        if self.bytes > HEAD_LIMIT + BODY_LIMIT + FRAMING {
            return Err("request over the size limit");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_limited_until_its_blank_line() {
        let mut r = Request::new(0);
        assert!(r.feed(b"GET / HTTP/1.1\r\nHost: x\r").is_ok());
        assert!(r.feed(b"\n\r").is_ok());
        assert!(!r.head_done);
        assert!(r.feed(b"\n").is_ok());
        assert!(r.head_done);
        assert!(r.feed(&vec![b'x'; BODY_LIMIT]).is_ok(), "a full body fits");

        let mut long = Request::new(0);
        assert!(long.feed(&vec![b'a'; HEAD_LIMIT]).is_ok());
        assert!(long.feed(b"a").is_err());

        let mut huge = Request::new(0);
        assert!(huge.feed(b"POST / HTTP/1.1\r\n\r\n").is_ok());
        assert!(huge.feed(&vec![b'x'; BODY_LIMIT + FRAMING]).is_ok());
        assert!(huge.feed(&vec![b'x'; HEAD_LIMIT]).is_err());
    }
}
