//! The connection guard: the only code that touches client sockets.
//!
//! rouille's HTTP layer (tiny_http) has no limits of its own: it keeps a thread per connection
//! for as long as the client likes, sets no socket timeouts, reads request heads and bodies of
//! any size, and its accept loop ends for good on the first accept error. So the guard accepts
//! on the public address and passes each request on to rouille, which listens on a loopback
//! port, one request at a time: a thread per client connection reads a request whole, checks
//! it, sends it to rouille, relays the response, and only then reads the next request.
//!
//! Invariants a reviewer can check in this file alone:
//! - at most `max_connections` client connections are open; a connection beyond that gets a
//!   503 and is closed at once;
//! - a connection idle between requests is closed after `idle_timeout`; a request not received
//!   whole within `request_timeout` of its first byte (slow clients), or not answered within
//!   `request_timeout` of being passed on, is cut off;
//! - rouille receives only whole requests: a head of at most `HEAD_LIMIT` bytes (else 431)
//!   whose request line is `method target HTTP/1.x` and whose header lines are `token: value`
//!   (else 400 or 505), with unambiguous framing (else 400 or 501), in origin form, ASCII (raw
//!   non-ASCII bytes, which HTTP does not allow, are percent-encoded), without `Expect`,
//!   `Connection` or `Upgrade` of the client's, and a body framed by `Content-Length` (chunked
//!   bodies are decoded here) of at most `BODY_LIMIT + 1` bytes: a longer body is cut there,
//!   rouille answers 413 (or an earlier error), and the connection closes;
//! - requests reach rouille over at most `backends` shared connections, each carrying one
//!   request at a time and going back to the pool only after its whole response was read;
//!   clients wait for one in turn, at most `request_timeout` (then 503);
//! - writes to a client that does not read time out;
//! - the accept loop never ends on an error: it logs it, waits, and goes on;
//! - on `stop`, idle connections are closed and busy ones right after their response.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::http::{BODY_LIMIT, new_request_id};

/// Largest request line plus headers, in bytes.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// Above this declared `Content-Length` the guard answers 413 without reading the body.
const DECLARED_LIMIT: usize = 1 << 20;
/// Longest chunk-size or trailer line of a chunked body.
const CHUNK_LINE_LIMIT: usize = 4 * 1024;
/// How often a waiting connection wakes to check its timers and the stop flag.
const TICK: Duration = Duration::from_millis(250);
/// How long a write to a client may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connection threads need little stack: a buffer and a few frames.
const STACK: usize = 128 * 1024;
/// Read size: small, since a thousand connections each touch one on their stack.
const CHUNK: usize = 4 * 1024;
/// How much of a response is gathered before it is written to the client.
const GATHER: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// Connections to rouille, shared by all clients: requests beyond wait in the guard.
    pub backends: usize,
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
    /// Accepts on `listener` and passes requests on to `backend` (rouille on loopback).
    pub fn start(listener: TcpListener, backend: SocketAddr, limits: Limits) -> io::Result<Guard> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { stopping: AtomicBool::new(false), open: AtomicUsize::new(0) });
        let accepting = Arc::clone(&shared);
        let backends = Arc::new(Backends::new(backend, limits.backends));
        let thread = thread::Builder::new()
            .name("guard-accept".to_owned())
            .spawn(move || accept_loop(&listener, &backends, limits, &accepting))?;
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
        let deadline = Instant::now() + drain;
        // accept() returns only for a connection: make one, again if the first could not be
        // made (say, with no file descriptor to spare), until the loop has seen the flag.
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < deadline {
            let _ = TcpStream::connect_timeout(&wake_address(self.addr), Duration::from_millis(200));
            thread::sleep(Duration::from_millis(10));
        }
        match self.thread.take() {
            Some(thread) if thread.is_finished() => drop(thread.join()),
            Some(_) => log::warn!("the accept loop did not stop"),
            None => {}
        }
        while self.open_connections() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        self.open_connections() == 0
    }
}

/// Binds the public address with a listen backlog of 4096 (the kernel may cap it at
/// `net.core.somaxconn`): std's 128 made a burst of a thousand clients lose SYNs, retried a
/// second later.
pub fn listen(host: &str, port: u16) -> io::Result<TcpListener> {
    let mut failure = io::Error::new(ErrorKind::AddrNotAvailable, "the host resolves to no address");
    for addr in std::net::ToSocketAddrs::to_socket_addrs(&(host, port))? {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        match socket.bind(&addr.into()).and_then(|()| socket.listen(4096)) {
            Ok(()) => return Ok(socket.into()),
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

/// Where to connect to reach our own listener (a wildcard address is reached on loopback).
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let mut wake = addr;
    if addr.ip().is_unspecified() {
        wake.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    wake
}

fn accept_loop(listener: &TcpListener, backends: &Arc<Backends>, limits: Limits, shared: &Arc<Shared>) {
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
            let _ = (&client).write_all(&rejection(Reject::TooManyConnections));
            continue;
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        let counted = Counted(Arc::clone(shared));
        let backends = Arc::clone(backends);
        let spawned = thread::Builder::new().name("connection".to_owned()).stack_size(STACK).spawn(move || {
            Connection { client, backends: &backends, limits, shared: &counted.0 }.serve();
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}"); // the connection was dropped
        }
    }
}

/// Decrements the open-connection count when its connection's thread ends, however it ends.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// Quietly: the client closed it, stayed idle too long, or the guard is stopping.
    Quiet,
    /// With the guard's own error response.
    Refuse(Reject),
    /// At once, logged: a limit in time was hit, or rouille misbehaved.
    Cut(String),
    /// The client's socket failed (a reset, say): logged at debug only.
    Gone(String),
    /// rouille closed its connection before answering: it had closed it after the previous
    /// response (tiny_http does after an error of its own) and never read this one.
    Unanswered,
}

impl From<io::Error> for End {
    fn from(e: io::Error) -> End {
        End::Gone(e.to_string())
    }
}

/// A request as it goes on to rouille.
#[derive(Debug, PartialEq, Eq)]
struct Forward {
    bytes: Vec<u8>,
    /// `HEAD`: the response has no body, whatever its headers say.
    head_method: bool,
    /// The connection ends with the response: the client asked, or the body was cut at the limit.
    last: bool,
}

struct Connection<'a> {
    client: TcpStream,
    backends: &'a Backends,
    limits: Limits,
    shared: &'a Shared,
}

impl Connection<'_> {
    fn serve(self) {
        let mut received = Vec::new(); // bytes from the client not yet passed on
        let configured = (self.client.set_read_timeout(Some(TICK)))
            .and_then(|()| self.client.set_write_timeout(Some(WRITE_TIMEOUT)))
            .and_then(|()| self.client.set_nodelay(true));
        let end = loop {
            if let Err(e) = &configured {
                break End::Cut(e.to_string());
            }
            match self.exchange(&mut received) {
                Ok(true) => {}
                Ok(false) => break End::Quiet,
                Err(end) => break end,
            }
        };
        match end {
            End::Quiet => {}
            End::Refuse(reject) => {
                log::warn!("request refused: {}", reject.detail());
                let _ = (&self.client).write_all(&rejection(reject));
            }
            End::Cut(why) => log::warn!("connection cut off: {why}"),
            End::Gone(why) => log::debug!("connection ended: {why}"),
            End::Unanswered => log::warn!("connection cut off: rouille closed the connection without a response"),
        }
    }

    /// One request and its response; returns whether the connection stays open.
    fn exchange(&self, received: &mut Vec<u8>) -> Result<bool, End> {
        if received.is_empty() {
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Ok(false); // draining: close between requests
            }
            self.receive(received, None)?;
        }
        let deadline = Instant::now() + self.limits.request_timeout;
        let request = self.read_request(received, deadline)?;
        let open = self.pass_on(&request, deadline)?;
        Ok(open && !request.last)
    }

    /// Sends a request to rouille on a shared connection and relays the response; returns
    /// whether rouille kept that connection open. A kept connection that rouille has closed
    /// since its last response gets the request again on a new one (rouille never read it).
    fn pass_on(&self, request: &Forward, deadline: Instant) -> Result<bool, End> {
        let timeout = self.limits.request_timeout;
        let (mut backend, reused) = self.backends.take(deadline)?;
        let mut result = send(&backend, &mut &self.client, request, timeout);
        if reused && matches!(result, Err(End::Unanswered)) {
            backend = self.backends.open_new()?; // in the place of the closed one
            result = send(&backend, &mut &self.client, request, timeout);
        }
        let (open, rest) = match result {
            Ok((open, rest)) => {
                self.backends.put_back(backend, open);
                (open, rest)
            }
            Err(end) => {
                self.backends.put_back(backend, false);
                return Err(end);
            }
        };
        (&self.client).write_all(&rest)?;
        Ok(open)
    }

    /// Reads what the client sends next into `received`: between requests (no `deadline`) for
    /// up to the idle timeout, or until the guard stops; within a request, until `deadline`.
    fn receive(&self, received: &mut Vec<u8>, deadline: Option<Instant>) -> Result<(), End> {
        let idle_until = Instant::now() + self.limits.idle_timeout;
        if deadline.is_none() {
            *received = Vec::new(); // an idle connection holds no buffer
        }
        loop {
            match read_into(&self.client, received) {
                Ok(0) => return Err(End::Quiet),
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => match deadline {
                    Some(deadline) if Instant::now() > deadline => {
                        return Err(End::Cut(format!("request not complete after {:?}", self.limits.request_timeout)));
                    }
                    None if Instant::now() > idle_until || self.shared.stopping.load(Ordering::SeqCst) => {
                        return Err(End::Quiet);
                    }
                    _ => {}
                },
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads one request whole (its first bytes are in `received`) and checks it; what follows
    /// it stays in `received`.
    fn read_request(&self, received: &mut Vec<u8>, deadline: Instant) -> Result<Forward, End> {
        let head_end = loop {
            if let Some(at) = find(received, b"\r\n\r\n") {
                break at + 4;
            }
            if received.len() > HEAD_LIMIT {
                return Err(End::Refuse(Reject::HeadTooLarge));
            }
            if has_bare_lf(received) {
                return Err(End::Refuse(Reject::AmbiguousLength)); // at once: no CRLF CRLF may come
            }
            self.receive(received, Some(deadline))?;
        };
        if head_end > HEAD_LIMIT {
            return Err(End::Refuse(Reject::HeadTooLarge));
        }
        let head = Head::parse(&received[..head_end]).map_err(End::Refuse)?;
        received.drain(..head_end);
        if head.expects_continue && head.length != Some(0) {
            (&self.client).write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = Vec::new();
        let whole = match head.length {
            Some(length) => {
                let wanted = length.min(BODY_LIMIT + 1);
                while received.len() < wanted {
                    self.receive(received, Some(deadline))?;
                }
                body.extend(received.drain(..wanted));
                wanted == length
            }
            None => {
                let mut chunked = Chunked::default();
                loop {
                    let used = chunked.decode(received, &mut body).map_err(End::Refuse)?;
                    received.drain(..used);
                    if chunked.is_done() {
                        break true;
                    }
                    if body.len() > BODY_LIMIT {
                        break false;
                    }
                    self.receive(received, Some(deadline))?;
                }
            }
        };
        body.truncate(BODY_LIMIT + 1);
        let mut bytes = head.forward;
        if head.framed || !body.is_empty() {
            bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&body);
        Ok(Forward { bytes, head_method: head.head_method, last: !whole || head.close })
    }
}

/// The connections to rouille. tiny_http keeps a thread per connection and accepts with a
/// backlog of 128, so the guard opens at most `max` (a burst of clients then waits here, not in
/// SYN retries) and keeps them for the next request of any client. Clients wait in turn: a
/// connection coming back goes to the longest waiting, so none is passed over.
struct Backends {
    addr: SocketAddr,
    max: usize,
    state: Mutex<BackendState>,
    /// Held while a connection is opened and probed.
    opening: Mutex<()>,
}

struct BackendState {
    idle: Vec<TcpStream>,
    /// Connections open, idle or in use, plus places granted to open one.
    open: usize,
    waiting: VecDeque<Arc<Waiter>>,
}

/// A client waiting for a connection; `grant` is filled in its turn.
#[derive(Default)]
struct Waiter {
    grant: Mutex<Option<Grant>>,
    granted: Condvar,
}

enum Grant {
    /// A kept connection.
    Kept(TcpStream),
    /// A place to open a new one.
    Open,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Backends {
    fn new(addr: SocketAddr, max: usize) -> Backends {
        let state = BackendState { idle: Vec::new(), open: 0, waiting: VecDeque::new() };
        Backends { addr, max: max.max(1), state: Mutex::new(state), opening: Mutex::new(()) }
    }

    /// A connection (`true`: a kept one, which rouille may have closed since), at once when
    /// nobody is waiting, else in turn; 503 when `deadline` passes first.
    fn take(&self, deadline: Instant) -> Result<(TcpStream, bool), End> {
        let waiter = {
            let mut state = lock(&self.state);
            if state.waiting.is_empty() {
                if let Some(stream) = state.idle.pop() {
                    return Ok((stream, true));
                }
                if state.open < self.max {
                    state.open += 1;
                    drop(state);
                    return Ok((self.open_new()?, false));
                }
            }
            let waiter = Arc::new(Waiter::default());
            state.waiting.push_back(Arc::clone(&waiter));
            waiter
        };
        let mut grant = lock(&waiter.grant);
        loop {
            match grant.take() {
                Some(Grant::Kept(stream)) => return Ok((stream, true)),
                Some(Grant::Open) => return Ok((self.open_new()?, false)),
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(grant);
                let mut state = lock(&self.state);
                if let Some(at) = state.waiting.iter().position(|w| Arc::ptr_eq(w, &waiter)) {
                    state.waiting.remove(at);
                    return Err(End::Refuse(Reject::Busy));
                }
                drop(state);
                // Our turn came just now: the grant is on its way.
                grant = waiter
                    .granted
                    .wait_while(lock(&waiter.grant), |g| g.is_none())
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            grant = waiter.granted.wait_timeout(grant, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Opens a connection in a place already counted in `open`. tiny_http hands each new
    /// connection to its task pool, which can lose the wake-up of one opened while another is
    /// being picked up: that connection is never read (seen as requests unanswered for 30 s).
    /// So connections are opened one at a time, each proven read by a `GET /health` before
    /// the next; one not answered within a second is dropped and another opened.
    fn open_new(&self) -> Result<TcpStream, End> {
        let _one_at_a_time = lock(&self.opening);
        let mut failure = String::new();
        // Its access-log line reads `guard-probe GET /health 200`.
        let bytes = b"GET /health HTTP/1.1\r\nHost: guard\r\nX-Request-Id: guard-probe\r\n\r\n".to_vec();
        let probe = Forward { bytes, head_method: false, last: false };
        for _ in 0..3 {
            let opened = TcpStream::connect(self.addr).and_then(|stream| {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(TICK))?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                Ok(stream)
            });
            match opened.map_err(End::from) {
                Ok(stream) => match send(&stream, &mut io::sink(), &probe, Duration::from_secs(1)) {
                    Ok((true, _)) => return Ok(stream),
                    Ok((false, _)) => failure = "it closed the probed connection".to_owned(),
                    Err(end) => failure = format!("{end:?}"),
                },
                Err(end) => failure = format!("{end:?}"),
            }
        }
        self.release(None);
        Err(End::Cut(format!("cannot reach rouille: {failure}")))
    }

    /// Gives back a connection after an exchange: kept when rouille keeps it, else closed.
    fn put_back(&self, stream: TcpStream, keep: bool) {
        self.release(keep.then_some(stream));
    }

    /// Hands a kept connection, or the place of a closed one, to the longest waiting client.
    fn release(&self, kept: Option<TcpStream>) {
        let mut state = lock(&self.state);
        let Some(waiter) = state.waiting.pop_front() else {
            match kept {
                Some(stream) => state.idle.push(stream),
                None => state.open -= 1,
            }
            return;
        };
        drop(state);
        *lock(&waiter.grant) = Some(kept.map_or(Grant::Open, Grant::Kept));
        waiter.granted.notify_one();
    }
}

/// What `send` leaves: whether rouille keeps the connection, and the end of the response, not
/// yet written to the client (a response up to `GATHER` bytes is all of it), so that the
/// connection goes back before a slow client reads it.
type Relayed = Result<(bool, Vec<u8>), End>;

/// Sends one request to rouille and reads its response, writing to the client what exceeds
/// `GATHER` as it comes.
fn send(mut backend: &TcpStream, client: &mut dyn Write, request: &Forward, timeout: Duration) -> Relayed {
    backend.write_all(&request.bytes).map_err(|_| End::Unanswered)?;
    let deadline = Instant::now() + timeout;
    let (mut buf, mut answered) = (Vec::new(), false);
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            // An interim 1xx response is not passed on: the guard answers `Expect` itself.
            if buf.get(9) == Some(&b'1') {
                buf.drain(..at + 4);
                continue;
            }
            break at + 4;
        }
        match read_backend(backend, &mut buf, deadline) {
            Ok(true) => answered = true,
            Err(e) if e.kind() == ErrorKind::TimedOut => return Err(End::Cut(format!("no answer after {timeout:?}"))),
            Err(_) | Ok(false) if !answered => return Err(End::Unanswered),
            Err(_) | Ok(false) => return Err(End::Cut("rouille closed the connection mid-response".to_owned())),
        }
    };
    let (mut framing, close) = response_framing(&buf[..head_end], request.head_method);
    // rouille is always asked to keep its connection; the client is told when its closes.
    let mut head_end = head_end;
    if request.last && !close {
        let line = b"Connection: close\r\n";
        buf.splice(head_end - 2..head_end - 2, line.iter().copied());
        head_end += line.len();
    }
    let mut rest = buf.len() - head_end;
    let mut scratch = Vec::new();
    loop {
        let done = match &mut framing {
            Framing::Length(left) if rest > *left => {
                return Err(End::Cut("rouille sent more than its Content-Length".to_owned()));
            }
            Framing::Length(left) => {
                *left -= rest;
                *left == 0
            }
            Framing::Chunked(chunked) => {
                let from = buf.len() - rest;
                scratch.clear();
                let used = chunked
                    .decode(&buf[from..], &mut scratch)
                    .map_err(|_| End::Cut("rouille sent a malformed chunked body".to_owned()))?;
                if used < rest {
                    return Err(End::Cut("rouille sent more than its chunked body".to_owned()));
                }
                chunked.is_done()
            }
            Framing::UntilClose => false,
        };
        if done {
            return Ok((!close, buf));
        }
        if buf.len() >= GATHER {
            client.write_all(&buf)?;
            buf.clear();
        }
        let before = buf.len();
        let more =
            read_backend(backend, &mut buf, deadline).map_err(|e| End::Cut(format!("rouille's response: {e}")))?;
        if !more {
            return match framing {
                Framing::UntilClose => Ok((false, buf)),
                _ => Err(End::Cut("rouille closed the connection mid-response".to_owned())),
            };
        }
        rest = buf.len() - before;
    }
}

/// Appends what rouille sends next to `buf`; `false` when it has closed the connection, a
/// `TimedOut` error past `deadline`.
fn read_backend(backend: &TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<bool> {
    loop {
        // tiny_http leaves Nagle on and writes a head and a body separately: the body waits for
        // our ACK of the head, which the kernel would delay by up to 40 ms.
        let _ = socket2::SockRef::from(backend).set_tcp_quickack(true);
        match read_into(backend, buf) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() > deadline {
                    return Err(ErrorKind::TimedOut.into());
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// How a response's body ends.
#[derive(Debug)]
enum Framing {
    /// After this many more bytes.
    Length(usize),
    Chunked(Chunked),
    /// When rouille closes the connection (an HTTP/1.0 response without a length).
    UntilClose,
}

/// The framing of the response whose head is `head`, and whether rouille closes the
/// connection after it. rouille sends no interim responses: the guard answers
/// `Expect: 100-continue` itself and does not pass it on.
fn response_framing(head: &[u8], head_method: bool) -> (Framing, bool) {
    let status = head.get(9..12).unwrap_or_default();
    let (mut length, mut chunked, mut close) = (None, false, false);
    for (name, value) in header_lines(head) {
        if name.eq_ignore_ascii_case(b"content-length") {
            length = std::str::from_utf8(value).ok().and_then(|v| v.parse::<usize>().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case(b"close");
        }
    }
    let framing = match (length, chunked) {
        _ if head_method || status == b"204" || status == b"304" => Framing::Length(0),
        (_, true) => Framing::Chunked(Chunked::default()),
        (Some(length), false) => Framing::Length(length),
        (None, false) => Framing::UntilClose,
    };
    let until_close = matches!(framing, Framing::UntilClose);
    (framing, close || until_close)
}

/// The header lines of a head, as trimmed (name, value) pairs.
fn header_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n').skip(1).filter_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        Some((line[..colon].trim_ascii(), line[colon + 1..].trim_ascii()))
    })
}

/// Reads once from `stream` (at most `CHUNK` bytes), appending to `buf`.
fn read_into(mut stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; CHUNK];
    let n = stream.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Whether a line ends in LF without CR.
fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Why the guard answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reject {
    TooManyConnections,
    HeadTooLarge,
    DeclaredTooLarge,
    AmbiguousLength,
    UnsupportedTransferEncoding,
    BadChunk,
    /// Every connection to rouille stayed busy for the whole request timeout.
    Busy,
    BadRequestLine,
    BadHeader,
    UnsupportedVersion,
}

impl Reject {
    fn detail(self) -> &'static str {
        match self {
            Reject::TooManyConnections => "Too many connections",
            Reject::HeadTooLarge => "Request line and headers are larger than 16384 bytes",
            Reject::DeclaredTooLarge => "Request body is larger than 65536 bytes",
            Reject::AmbiguousLength => {
                "Content-Length is invalid, repeated, or sent with Transfer-Encoding, or a line ends in a bare LF"
            }
            Reject::UnsupportedTransferEncoding => "Transfer-Encoding other than chunked",
            Reject::BadChunk => "Malformed chunked body",
            Reject::Busy => "The server is busy",
            Reject::BadRequestLine => "Malformed request line",
            Reject::BadHeader => "Malformed header line",
            Reject::UnsupportedVersion => "Only HTTP/1.0 and HTTP/1.1 are supported",
        }
    }
}

/// The guard's own answer, in the API's error format, after which it closes the connection.
fn rejection(reject: Reject) -> Vec<u8> {
    let (status, code) = match reject {
        Reject::TooManyConnections | Reject::Busy => ("503 Service Unavailable\r\nRetry-After: 1", "unavailable"),
        Reject::HeadTooLarge => ("431 Request Header Fields Too Large", "headers_too_large"),
        Reject::DeclaredTooLarge => ("413 Payload Too Large", "payload_too_large"),
        Reject::AmbiguousLength | Reject::BadChunk | Reject::BadRequestLine | Reject::BadHeader => {
            ("400 Bad Request", "bad_request")
        }
        Reject::UnsupportedVersion => ("505 HTTP Version Not Supported", "http_version_not_supported"),
        Reject::UnsupportedTransferEncoding => ("501 Not Implemented", "not_implemented"),
    };
    let id = new_request_id();
    let body = format!(r#"{{"detail":"{}","code":"{code}","request_id":"{id}"}}"#, reject.detail());
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Request-Id: {id}\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A checked request head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// The request line and headers as rouille should see them, without the blank line, the
    /// headers that frame the body (the guard frames it anew), `Expect` and `Upgrade`.
    forward: Vec<u8>,
    /// The body's length; `None` for a chunked body.
    length: Option<usize>,
    /// Whether the client framed a body at all (`Content-Length` or `Transfer-Encoding`).
    framed: bool,
    expects_continue: bool,
    head_method: bool,
    /// The client asked to close after this request; rouille (tiny_http) closes then too.
    close: bool,
}

impl Head {
    /// Framing must be unambiguous (RFC 9112 §6.3); the target goes to origin form
    /// (`GET http://host/path` becomes `GET /path`); non-ASCII bytes are percent-encoded.
    fn parse(head: &[u8]) -> Result<Head, Reject> {
        // tiny_http ends lines at CRLF only: a bare LF would make it see other headers.
        if has_bare_lf(head) {
            return Err(Reject::AmbiguousLength);
        }
        let blank_line = head.len().saturating_sub(2);
        let request_line = head[..blank_line].split_inclusive(|&b| b == b'\n').next().unwrap_or_default();
        let mut parts = request_line.strip_suffix(b"\r\n").unwrap_or(request_line).split(|&b| b == b' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Reject::BadRequestLine);
        };
        let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
        if method.is_empty() || !method.iter().all(token) || target.is_empty() {
            return Err(Reject::BadRequestLine);
        }
        if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
            return Err(Reject::UnsupportedVersion);
        }
        let mut forward = Vec::with_capacity(head.len() + 32);
        forward.extend_from_slice(method);
        forward.push(b' ');
        percent_encode_non_ascii(origin_form(target), &mut forward);
        forward.push(b' ');
        forward.extend_from_slice(version);
        forward.extend_from_slice(b"\r\n");
        let (mut lengths, mut chunked, mut expect, mut connection) = (Vec::new(), 0, None, None);
        for line in head[..blank_line].split_inclusive(|&b| b == b'\n').skip(1) {
            // `name: value`, the name a token right before the colon, the value without
            // control characters but tab. tiny_http trims more than ASCII space (a vertical
            // tab, say), so anything looser could mean another header to it than to the
            // guard: a `\x0bContent-Length` the guard passed on would frame the body anew.
            let text = line.strip_suffix(b"\r\n").unwrap_or(line);
            let colon = text.iter().position(|&b| b == b':').ok_or(Reject::BadHeader)?;
            let (name, value) = (&text[..colon], &text[colon + 1..]);
            if name.is_empty()
                || !name.iter().all(token)
                || value.iter().any(|&b| b != b'\t' && (b < b' ' || b == 0x7f))
            {
                return Err(Reject::BadHeader);
            }
            let (value, is) = (value.trim_ascii(), |known: &[u8]| name.eq_ignore_ascii_case(known));
            // The guard alone frames the body, answers `Expect`, and decides when the client's
            // connection ends; rouille's connection is kept alive and never upgraded.
            if is(b"content-length") {
                let digits = value.iter().all(u8::is_ascii_digit) && !value.is_empty();
                let length = std::str::from_utf8(value).ok().filter(|_| digits).and_then(|v| v.parse::<usize>().ok());
                lengths.push(length.ok_or(Reject::AmbiguousLength)?);
            } else if is(b"transfer-encoding") {
                if !value.eq_ignore_ascii_case(b"chunked") {
                    return Err(Reject::UnsupportedTransferEncoding);
                }
                chunked += 1;
            } else if is(b"expect") {
                expect = expect.or(Some(value.eq_ignore_ascii_case(b"100-continue")));
            } else if is(b"connection") {
                connection = connection.or_else(|| Some(value.to_ascii_lowercase()));
            } else if !is(b"upgrade") {
                percent_encode_non_ascii(line, &mut forward);
            }
        }
        let length = match (lengths.as_slice(), chunked) {
            ([], 0) => Some(0),
            // Up to a megabyte the guard reads the first `BODY_LIMIT + 1` bytes and rouille
            // answers (413, or an earlier error in the contract's order); beyond, the guard does.
            ([length], 0) if *length > DECLARED_LIMIT => return Err(Reject::DeclaredTooLarge),
            ([length], 0) => Some(*length),
            ([], 1) => None,
            _ => return Err(Reject::AmbiguousLength),
        };
        forward.extend_from_slice(b"Connection: keep-alive\r\n");
        // tiny_http's rule for the client's connection, from its first Connection header.
        let has = |token: &[u8]| connection.as_ref().is_some_and(|c| find(c, token).is_some());
        let close = has(b"close") || has(b"upgrade") || (version == b"HTTP/1.0" && !has(b"keep-alive"));
        let framed = !lengths.is_empty() || chunked > 0;
        // An HTTP/1.0 client's expectation is ignored (RFC 9110 §10.1.1).
        let expects_continue = expect == Some(true) && version == b"HTTP/1.1";
        Ok(Head { forward, length, framed, expects_continue, head_method: method == b"HEAD", close })
    }
}

/// A chunked body (RFC 9112 §7.1) as it arrives: hexadecimal chunk sizes (extensions
/// ignored), each chunk's data and CRLF, a zero-size chunk, trailer lines (dropped), and an
/// empty line.
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
    /// The line being read (a chunk size, the CRLF after data, or a trailer).
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

impl Chunked {
    fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`, appending data to `out`; returns how many bytes belong to the
    /// body (all of `input` unless the body ended within it).
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Reject> {
        let mut used = 0;
        while used < input.len() && !self.is_done() {
            if let ChunkState::Data(left) = self.state {
                let take = left.min(input.len() - used);
                out.extend_from_slice(&input[used..used + take]);
                used += take;
                self.state = if take == left { ChunkState::DataEnd } else { ChunkState::Data(left - take) };
                continue;
            }
            self.line.push(input[used]);
            used += 1;
            let after_data = self.state == ChunkState::DataEnd && !b"\r\n".starts_with(&self.line);
            if after_data || self.line.len() > CHUNK_LINE_LIMIT {
                return Err(Reject::BadChunk);
            }
            if !self.line.ends_with(b"\n") {
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = line.strip_suffix(b"\r\n").ok_or(Reject::BadChunk)?;
            self.state = match self.state {
                ChunkState::Size => match chunk_size(line)? {
                    0 => ChunkState::Trailer,
                    size => ChunkState::Data(size),
                },
                ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                ChunkState::DataEnd => return Err(Reject::BadChunk),
                ChunkState::Trailer if line.is_empty() => ChunkState::Done,
                other => other, // a trailer line, dropped
            };
        }
        Ok(used)
    }
}

/// The size on a chunk-size line: hexadecimal digits, then optionally `;` and extensions.
fn chunk_size(line: &[u8]) -> Result<usize, Reject> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii_end();
    let significant = digits.iter().position(|&b| b != b'0').map_or(&digits[digits.len()..], |at| &digits[at..]);
    if digits.is_empty() || significant.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(Reject::BadChunk);
    }
    if significant.is_empty() {
        return Ok(0);
    }
    let digits = std::str::from_utf8(significant).map_err(|_| Reject::BadChunk)?;
    usize::from_str_radix(digits, 16).map_err(|_| Reject::BadChunk)
}

/// `http://host:port/path?q` to `/path?q` (and `http://host` to `/`); anything else as it is.
fn origin_form(target: &[u8]) -> &[u8] {
    let scheme = [&b"http://"[..], b"https://"]
        .into_iter()
        .find(|scheme| target.get(..scheme.len()).is_some_and(|t| t.eq_ignore_ascii_case(scheme)));
    let Some(scheme) = scheme else { return target };
    let rest = &target[scheme.len()..];
    rest.iter().position(|&b| b == b'/' || b == b'?').map_or(b"/", |i| &rest[i..])
}

fn percent_encode_non_ascii(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b.is_ascii() {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What goes on to rouille for a head (without a body).
    fn forwarded(head: &[u8]) -> Result<Vec<u8>, Reject> {
        Head::parse(head).map(|h| h.forward)
    }

    fn decode_all(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), Reject> {
        let mut chunked = Chunked::default();
        let (mut out, mut used) = (Vec::new(), 0);
        for piece in pieces {
            used = chunked.decode(piece, &mut out)?;
        }
        Ok((out, chunked.is_done(), used))
    }

    #[test]
    fn heads_lose_their_framing_headers_and_keep_the_rest() {
        let head = Head::parse(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nX-Y: z\r\n\r\n").unwrap();
        assert_eq!(head.forward, b"POST /a HTTP/1.1\r\nHost: x\r\nX-Y: z\r\nConnection: keep-alive\r\n");
        assert_eq!((head.length, head.framed, head.expects_continue, head.head_method), (Some(4), true, false, false));
        let head = Head::parse(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((head.length, head.framed), (Some(0), false));
        let head =
            Head::parse(b"PUT /a HTTP/1.1\r\nexpect: 100-Continue\r\nExpect: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
        assert_eq!(head.forward, b"PUT /a HTTP/1.1\r\nConnection: keep-alive\r\n", "the guard answers `Expect` itself");
        assert_eq!((head.length, head.framed, head.expects_continue), (None, true, true));
        let head = Head::parse(
            b"PUT /a HTTP/1.1\r\nExpect: x\r\nExpect: 100-continue\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.forward, b"PUT /a HTTP/1.1\r\nConnection: keep-alive\r\n", "never upgraded");
        assert!(!head.expects_continue && head.close, "the first Expect counts");
        assert!(Head::parse(b"HEAD / HTTP/1.1\r\n\r\n").unwrap().head_method);
    }

    #[test]
    fn the_connection_closes_when_tiny_http_would_close_it() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nconnection: Keep-Alive, Close\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false),
        ];
        for (head, close) in cases {
            assert_eq!(Head::parse(head).unwrap().close, *close, "{}", String::from_utf8_lossy(head));
        }
    }

    /// Request lines must be `method SP target SP HTTP/1.x`; framing must be unambiguous.
    #[test]
    fn heads_the_guard_refuses() {
        let cases: &[(&[u8], Reject)] = &[
            (b" HEAD /health HTTP/1.1\r\n\r\n", Reject::BadRequestLine),
            (b"GET  / HTTP/1.1\r\n\r\n", Reject::BadRequestLine),
            (b"GET / HTTP/1.1 x\r\n\r\n", Reject::BadRequestLine),
            (b"GET /\r\n\r\n", Reject::BadRequestLine),
            (b"G(T / HTTP/1.1\r\n\r\n", Reject::BadRequestLine),
            (b"GET / HTTP/2.0\r\n\r\n", Reject::UnsupportedVersion),
            (b"GET / HTTP/1.2\r\n\r\n", Reject::UnsupportedVersion),
            (b"GET / http/1.1\r\n\r\n", Reject::UnsupportedVersion),
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", Reject::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", Reject::AmbiguousLength),
            (
                b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                Reject::AmbiguousLength,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", Reject::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", Reject::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Reject::UnsupportedTransferEncoding),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", Reject::UnsupportedTransferEncoding),
            (b"POST / HTTP/1.1\r\nX: a\nContent-Length: 4\r\n\r\n", Reject::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 999999999999999\r\n\r\n", Reject::DeclaredTooLarge),
        ];
        for (head, reject) in cases {
            assert_eq!(forwarded(head), Err(*reject), "{}", String::from_utf8_lossy(head));
        }
        for bad in
            [&b"\x0bContent-Length: 0"[..], b"No colon", b"Foo Bar: x", b"Foo : x", b" folded", b"X: a\x01b", b": x"]
        {
            let head = [&b"GET / HTTP/1.1\r\n"[..], bad, b"\r\n\r\n"].concat();
            assert_eq!(forwarded(&head), Err(Reject::BadHeader), "{}", String::from_utf8_lossy(bad));
        }
        assert!(forwarded(b"GET / HTTP/1.1\r\nX-Y:\tvalue with tab \r\nEmpty:\r\n\r\n").is_ok());
        assert!(forwarded(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").is_ok());
        assert!(forwarded(b"POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n").is_ok());
    }

    #[test]
    fn targets_become_origin_form_and_ascii() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"GET http://h:8000/health HTTP/1.1\r\n\r\n", b"GET /health HTTP/1.1\r\n"),
            (b"GET HTTPS://h/api/tasks?q=1 HTTP/1.1\r\n\r\n", b"GET /api/tasks?q=1 HTTP/1.1\r\n"),
            (b"GET http://h HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n"),
            (b"GET /api/tasks?q=\xc3\xa9 HTTP/1.1\r\n\r\n", b"GET /api/tasks?q=%C3%A9 HTTP/1.1\r\n"),
            (b"GET / HTTP/1.1\r\nCookie: a=d\xc3\xa9\r\n\r\n", b"GET / HTTP/1.1\r\nCookie: a=d%C3%A9\r\n"),
            (b"GET /plain HTTP/1.1\r\n\r\n", b"GET /plain HTTP/1.1\r\n"),
        ];
        for (head, expected) in cases {
            let expected = [*expected, b"Connection: keep-alive\r\n"].concat();
            assert_eq!(forwarded(head).unwrap(), expected, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn chunked_bodies_are_decoded_however_they_are_split() {
        let body: &[u8] = b"5;name=value\r\nhello\r\n6 \r\n world\r\n0\r\nTrailer: x\r\n\r\nGET /next";
        let (out, done, used) = decode_all(&[body]).unwrap();
        assert_eq!((out.as_slice(), done), (&b"hello world"[..], true));
        assert_eq!(&body[used..], b"GET /next", "the rest begins the next request");
        for split in 1..body.len() - 9 {
            let (first, second) = body.split_at(split);
            let (out, done, _) = decode_all(&[first, second]).unwrap();
            assert_eq!((out.as_slice(), done), (&b"hello world"[..], true), "split at {split}");
        }
        let (out, done, _) = decode_all(&[b"000000000000000A\r\n0123456789\r\n0\r\n\r\n"]).unwrap();
        assert_eq!((out.len(), done), (10, true), "leading zeros do not count against the size's length");
        let (out, done, _) = decode_all(&[b"A\r\n0123456789\r\n"]).unwrap();
        assert_eq!((out.len(), done), (10, false), "waits for the last chunk");
    }

    #[test]
    fn malformed_chunks_are_refused() {
        let long_size = format!("{}\r\n", "1".repeat(CHUNK_LINE_LIMIT + 1));
        let cases: &[&[u8]] = &[
            b"x\r\n",
            b"\r\n",
            b"-1\r\n",
            b"+5\r\nhello\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXY",
            b"1000000000000000\r\n",
            b"0\r\nTrailer: x\n",
            long_size.as_bytes(),
        ];
        for case in cases {
            assert_eq!(decode_all(&[case]), Err(Reject::BadChunk), "{}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn responses_are_framed_as_rouille_frames_them() {
        let framing = |head: &[u8], head_method| {
            let (framing, close) = response_framing(head, head_method);
            (format!("{framing:?}"), close)
        };
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", false), ("Length(12)".into(), false));
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", true), ("Length(0)".into(), false));
        assert_eq!(framing(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false).0, "Length(0)");
        let chunked = framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false);
        assert!(chunked.0.starts_with("Chunked"), "{chunked:?}");
        assert!(framing(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", false).1);
        assert_eq!(framing(b"HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\n", false), ("UntilClose".into(), true));
    }

    /// A stand-in for rouille: answers `answers` requests on each connection, then closes it.
    fn fake_rouille(answers: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                thread::spawn(move || {
                    let mut buf = Vec::new();
                    for _ in 0..answers {
                        while find(&buf, b"\r\n\r\n").is_none() {
                            if read_into(&stream, &mut buf).unwrap_or(0) == 0 {
                                return;
                            }
                        }
                        buf.drain(..find(&buf, b"\r\n\r\n").unwrap() + 4);
                        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn a_kept_connection_rouille_closed_is_replaced_without_failing_the_request() {
        // Each connection answers the guard's probe and one request, then closes.
        let backends = Backends::new(fake_rouille(2), 1);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let client = listener.accept().unwrap().0;
        let shared = Shared { stopping: AtomicBool::new(false), open: AtomicUsize::new(1) };
        let timeout = Duration::from_secs(5);
        let limits = Limits { max_connections: 1, backends: 1, idle_timeout: timeout, request_timeout: timeout };
        let connection = Connection { client, backends: &backends, limits, shared: &shared };
        let request = Forward { bytes: b"GET / HTTP/1.1\r\n\r\n".to_vec(), head_method: false, last: false };
        for _ in 0..3 {
            let passed = connection.pass_on(&request, Instant::now() + timeout);
            assert!(matches!(passed, Ok(true)), "{passed:?}");
        }
        peer.set_read_timeout(Some(timeout)).unwrap();
        let mut answers = [0u8; 120];
        peer.read_exact(&mut answers).unwrap();
        assert_eq!(String::from_utf8_lossy(&answers).matches("HTTP/1.1 200 OK").count(), 3);
        assert_eq!(lock(&backends.state).open, 1, "one connection at a time");
    }

    #[test]
    fn rejections_are_json_errors_that_close_the_connection() {
        let response = String::from_utf8(rejection(Reject::HeadTooLarge)).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 ") && head.contains("Connection: close"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], "headers_too_large");
        assert!(head.contains(&format!("X-Request-Id: {}", json["request_id"].as_str().unwrap())));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
