//! The connection layer: the public socket, one thread per client connection that reads each
//! request whole and writes its response, and a fixed pool of `workers` threads that run the
//! handlers.
//!
//! Invariants a reviewer can check in this file alone:
//! - a connection's thread alone reads and writes its socket: it reads one request, hands it to
//!   the workers with an answer slot of its own (made for that request), waits for the answer,
//!   and writes it to that same socket before it reads the next request; so requests are
//!   answered in the order they came and no response can reach another connection;
//! - at most `max_connections` connections are open (one more gets a 503 and is closed), a bound
//!   lowered at start-up to what the open-file limit allows (`fit_open_files`);
//! - at most `workers` handlers run at once, on the workers' threads, taking requests in order
//!   of arrival; a request still waiting at its deadline is answered 503 without running;
//! - a handler never waits on a client: its request is whole in memory before it runs, and its
//!   response is whole in memory, its worker free again, before the first byte is written;
//! - every wait has a deadline: `idle_timeout` between requests; `request_timeout` from a
//!   request's first byte until it is whole; `request_timeout` to write a whole response, however
//!   slowly the client reads;
//! - a connection that ends after a response drains what the client still sends, for at most
//!   `LINGER` (lingering close), so the client reads the response rather than a reset;
//! - responses to `HEAD`, `204` and `304` have no body and `204` no `Content-Length`; a header
//!   with a control character in it is never written;
//! - the accept loop never ends on an error (descriptors run out, say): it logs, waits, goes on.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use rouille::{Request, Response};

use crate::chunked::Chunked;
use crate::error::ApiError;
use crate::head::{self, Body, Head};
use crate::lock;
use crate::metrics::Metrics;
use crate::wire::{BODY_LIMIT, http_date, request_id};

/// How often a blocked read or write wakes to check its deadline and the stop flag.
const TICK: Duration = Duration::from_millis(250);
/// How long a closing connection reads and drops what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// Connection threads only read and write: a buffer and a few frames.
const CONNECTION_STACK: usize = 128 * 1024;
/// Read size: small, since a thousand connections each touch one on their stack.
const CHUNK: usize = 4 * 1024;

/// What answers a request.
pub type Handler = Box<dyn Fn(&Request) -> Response + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub workers: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

/// A server accepting connections; `stop` drains it.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    limits: Limits,
    handler: Handler,
    queue: Mutex<Queue>,
    /// Signalled when a request is queued, or when the workers are to stop.
    queued: Condvar,
    stopping: AtomicBool,
    /// Counts open connections (`open_connections`) and the transport's refusals.
    metrics: Arc<Metrics>,
}

impl Server {
    pub fn start(listener: TcpListener, limits: Limits, metrics: Arc<Metrics>, handler: Handler) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let queue = Mutex::new(Queue { jobs: VecDeque::new(), idle: 0, stop: false });
        let stopping = AtomicBool::new(false);
        let shared = Arc::new(Shared { limits, handler, queue, queued: Condvar::new(), stopping, metrics });
        for _ in 0..limits.workers.max(1) {
            let working = Arc::clone(&shared);
            thread::Builder::new().name("worker".to_owned()).spawn(move || work(&working))?;
        }
        let accepting = Arc::clone(&shared);
        let thread =
            thread::Builder::new().name("accept".to_owned()).spawn(move || accept_loop(&listener, &accepting))?;
        Ok(Server { addr, shared, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, then waits up to `drain` for open connections to finish their requests
    /// (idle ones close at once). Returns whether they all did.
    pub fn stop(&mut self, drain: Duration) -> bool {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join(); // within a TICK: accept() times out that often
        }
        let deadline = Instant::now() + drain;
        while self.shared.metrics.open_connections.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        // The workers end once the queue is empty (one stuck on the database ends with it).
        lock(&self.shared.queue).stop = true;
        self.shared.queued.notify_all();
        self.shared.metrics.open_connections.load(Ordering::SeqCst) == 0
    }
}

/// Binds the public address with a listen backlog of 4096 (the kernel may cap it at
/// `net.core.somaxconn`): std's 128 made a burst of a thousand clients lose SYNs, retried a
/// second later. `accept` on it gives up after a `TICK`, so that the loop sees a stop.
pub fn listen(host: &str, port: u16) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, listen, socket_with, sockopt};
    let mut failure = io::Error::new(ErrorKind::AddrNotAvailable, "the host resolves to no address");
    for addr in (host, port).to_socket_addrs()? {
        let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
        let socket = socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
        sockopt::set_socket_reuseaddr(&socket, true)?;
        sockopt::set_socket_timeout(&socket, sockopt::Timeout::Recv, Some(TICK))?;
        match bind(&socket, &addr).and_then(|()| listen(&socket, 4096)) {
            Ok(()) => return Ok(TcpListener::from(socket)),
            Err(e) => failure = e.into(),
        }
    }
    Err(failure)
}

/// Raises the soft open-file limit, up to the hard one, so that `connections` client
/// connections fit beside `reserve` other descriptors; returns how many connections fit, and
/// logs once when that is fewer than asked.
pub fn fit_open_files(connections: usize, reserve: usize) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let wanted = u64::try_from(connections.saturating_add(reserve)).unwrap_or(u64::MAX);
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|soft| soft < wanted) {
        let raised = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(raised), maximum: limit.maximum });
    }
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let fit = usize::try_from(soft.saturating_sub(reserve as u64)).unwrap_or(usize::MAX).max(1);
    if fit < connections {
        log::warn!(
            "MAX_CONNECTIONS lowered from {connections} to {fit}: the process may open {soft} files \
             (ulimit -n), {reserve} of them kept for the database and the server itself"
        );
    }
    connections.min(fit)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut warned = None::<Instant>;
    while !shared.stopping.load(Ordering::SeqCst) {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => {
                // Out of descriptors, or a connection reset before it was accepted: wait, go on.
                if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    log::warn!("accept failed: {e}");
                    warned = Some(Instant::now());
                }
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let max = shared.limits.max_connections;
        if shared.metrics.open_connections.load(Ordering::SeqCst) >= max {
            // What the client sent already is read first: closed unread, it would reset the 503.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(1)));
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = (&stream).read(&mut [0; CHUNK]);
            let refused = ApiError::Unavailable(format!("connection refused: {max} connections open"));
            refuse(&stream, &shared.metrics, &refused, None, false);
            continue;
        }
        shared.metrics.open_connections.fetch_add(1, Ordering::SeqCst);
        let counted = Counted(Arc::clone(shared));
        let spawned =
            thread::Builder::new().name("connection".to_owned()).stack_size(CONNECTION_STACK).spawn(move || {
                Connection { stream, peer, shared: &counted.0, buf: Vec::new() }.serve();
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
        self.0.metrics.open_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a connection ends before a response that closes it.
enum End {
    /// Quietly: the client closed it, stayed idle too long, or the server is stopping.
    Quiet,
    /// With an error response: a request that cannot be read.
    Refuse(ApiError),
    /// With a 503 under the request's own id: it got no worker, or no answer, in time.
    Busy { id: String, head_method: bool, cause: &'static str },
    /// At once, logged: a request or response deadline passed.
    Cut(String),
    /// The socket failed (a reset, say): logged at debug only.
    Gone(io::Error),
}

struct Connection<'a> {
    stream: TcpStream,
    peer: SocketAddr,
    shared: &'a Shared,
    /// Bytes received and not yet read as part of a request.
    buf: Vec<u8>,
}

impl Connection<'_> {
    fn serve(mut self) {
        let configured = (self.stream.set_nodelay(true))
            .and_then(|()| self.stream.set_read_timeout(Some(TICK)))
            .and_then(|()| self.stream.set_write_timeout(Some(TICK)));
        if let Err(e) = configured {
            return log::warn!("cannot set up a connection: {e}");
        }
        let end = loop {
            match self.exchange() {
                Ok(true) => {}
                Ok(false) => break None,
                Err(end) => break Some(end),
            }
        };
        match end {
            None => {}
            Some(End::Quiet) => return,
            Some(End::Refuse(error)) => refuse(&self.stream, &self.shared.metrics, &error, None, false),
            Some(End::Busy { id, head_method, cause }) => {
                let busy = ApiError::Unavailable(cause.to_owned());
                refuse(&self.stream, &self.shared.metrics, &busy, Some(&id), head_method);
            }
            Some(End::Cut(why)) => return log::warn!("connection cut off: {why}"),
            Some(End::Gone(e)) => return log::debug!("connection ended: {e}"),
        }
        // Lingering close: stop sending, then read and drop what the client still sends until
        // it closes or `LINGER` passes, so that its response is not lost to a reset.
        let _ = self.stream.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER;
        let mut sink = [0u8; CHUNK];
        while Instant::now() < until {
            match (&self.stream).read(&mut sink) {
                Ok(0) => break,
                Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    break;
                }
                _ => {}
            }
        }
    }

    /// One request and its response; returns whether the connection stays open.
    fn exchange(&mut self) -> Result<bool, End> {
        let idle_until = Instant::now() + self.shared.limits.idle_timeout;
        loop {
            // Empty lines before a request line are ignored (RFC 9112 §2.2): some clients end
            // a body with an extra CRLF.
            let blank = self.buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            self.buf.drain(..blank);
            if !self.buf.is_empty() {
                break;
            }
            self.buf = Vec::new(); // an idle connection holds no buffer
            self.receive(idle_until, true)?; // blank lines do not restart the idle time
        }
        let deadline = Instant::now() + self.shared.limits.request_timeout;
        let (head, body, whole) = self.read_request(deadline)?;
        let keep_open = whole && !head.close && !self.shared.stopping.load(Ordering::SeqCst);
        let framing = Framing { head_method: head.method == "HEAD", http10: head.http10, keep_open };
        // Every request has its id from here on: the caller's, if well formed, else a new one.
        let mut headers = head.headers;
        let given = headers.iter().position(|(name, _)| name.eq_ignore_ascii_case("x-request-id"));
        let id = request_id(given.map(|at| headers.remove(at).1).as_deref());
        headers.push(("X-Request-Id".into(), id.clone()));
        match head.body {
            // The length declared, when the body was too large to read; else the bytes read.
            Body::Length(length) if length > BODY_LIMIT => headers.push(("Content-Length".into(), length.to_string())),
            Body::Length(0) => {}
            _ => headers.push(("Content-Length".into(), body.len().to_string())),
        }
        let request = Request::fake_http_from(self.peer, head.method, head.target, headers, body);
        let job = Job { request, framing, deadline, answer: Arc::default() };
        let busy = |cause| End::Busy { id, head_method: framing.head_method, cause };
        let response = self.run(job).map_err(busy)?;
        self.write_all(&mut response.slices(), Instant::now() + self.shared.limits.request_timeout)?;
        Ok(keep_open)
    }

    /// Queues a request for the workers and waits for its response. A request still queued at
    /// `deadline` is taken back, and one whose handler has not answered `request_timeout` after
    /// that (a database that froze, say) is given up, its late answer dropped with its slot:
    /// both are answered 503, for the reason returned.
    fn run(&self, job: Job) -> Result<Bytes, &'static str> {
        const NO_WORKER: &str = "no worker free within REQUEST_TIMEOUT_SECONDS";
        let (answer, deadline) = (Arc::clone(&job.answer), job.deadline);
        let mut queue = lock(&self.shared.queue);
        queue.jobs.push_back(job);
        if queue.idle > 0 {
            self.shared.queued.notify_one();
        }
        drop(queue);
        if let Some(answered) = answer.wait(deadline) {
            return answered.ok_or(NO_WORKER);
        }
        let mut queue = lock(&self.shared.queue);
        if let Some(at) = queue.jobs.iter().position(|job| Arc::ptr_eq(&job.answer, &answer)) {
            queue.jobs.remove(at);
            return Err(NO_WORKER);
        }
        drop(queue); // a worker has it
        match answer.wait(deadline + self.shared.limits.request_timeout) {
            Some(answered) => answered.ok_or(NO_WORKER),
            None => Err("the handler did not answer in time"),
        }
    }

    /// Reads one request whole (the first of its bytes are in `buf`): its head, and its body
    /// up to `BODY_LIMIT` + 1 bytes, which is all of it when the flag is true. What follows it
    /// stays in `buf`.
    fn read_request(&mut self, deadline: Instant) -> Result<(Head, Vec<u8>, bool), End> {
        let mut scanned = 0;
        let end = loop {
            if let Some(end) = head::end(&self.buf, scanned).map_err(End::Refuse)? {
                break end;
            }
            scanned = self.buf.len();
            self.receive(deadline, false)?;
        };
        let head = head::parse(&self.buf[..end]).map_err(End::Refuse)?;
        self.buf.drain(..end);
        let mut body = Vec::new();
        let wanted = match head.body {
            // Too large: the handler answers 413 (after 404, 405 and 401) without reading it.
            Body::Length(length) if length > BODY_LIMIT => 0,
            Body::Length(length) => length,
            Body::Chunked => 1, // at least its last chunk
        };
        if head.expects_continue && self.buf.len() < wanted {
            self.write_all(&mut [IoSlice::new(b"HTTP/1.1 100 Continue\r\n\r\n")], deadline)?;
        }
        let whole = if head.body == Body::Chunked {
            let mut decoder = Chunked::default();
            loop {
                let used = decoder.decode(&self.buf, &mut body).map_err(End::Refuse)?;
                self.buf.drain(..used);
                if decoder.is_done() || body.len() > BODY_LIMIT {
                    break decoder.is_done();
                }
                self.receive(deadline, false)?;
            }
        } else {
            while self.buf.len() < wanted {
                self.receive(deadline, false)?;
            }
            body.extend(self.buf.drain(..wanted));
            head.body == Body::Length(wanted)
        };
        body.truncate(BODY_LIMIT + 1);
        Ok((head, body, whole))
    }

    /// Reads what the client sends next into `buf`, by `deadline`: a request's (it is cut off
    /// then), or between requests the idle one (the connection closes quietly then, or when the
    /// server stops).
    fn receive(&mut self, deadline: Instant, idle: bool) -> Result<(), End> {
        let mut chunk = [0u8; CHUNK];
        loop {
            // Checked before every read, not only when one times out: a client that sends a
            // byte at a time must not keep a request, or an idle connection, open for ever.
            if Instant::now() > deadline || (idle && self.shared.stopping.load(Ordering::SeqCst)) {
                let timeout = self.shared.limits.request_timeout;
                return Err(if idle {
                    End::Quiet
                } else {
                    End::Cut(format!("request not complete after {timeout:?}"))
                });
            }
            match (&self.stream).read(&mut chunk) {
                Ok(0) => return Err(End::Quiet),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(End::Gone(e)),
            }
        }
    }

    /// Writes everything by `deadline`, however slowly the client reads; else cuts it off.
    fn write_all(&self, mut bufs: &mut [IoSlice<'_>], deadline: Instant) -> Result<(), End> {
        while !bufs.is_empty() {
            // Checked after every write, not only when one times out: a client that takes a
            // few bytes at a time must not keep the connection for ever.
            if Instant::now() > deadline {
                let timeout = self.shared.limits.request_timeout;
                return Err(End::Cut(format!("response not taken within {timeout:?}")));
            }
            match (&self.stream).write_vectored(bufs) {
                Ok(0) => return Err(End::Gone(ErrorKind::WriteZero.into())),
                Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(End::Gone(e)),
            }
        }
        Ok(())
    }
}

/// The transport's own answer to a request it will not pass on; the connection closes after it.
/// `given` is the request's `X-Request-Id`, when its head was read.
fn refuse(stream: &TcpStream, metrics: &Metrics, error: &ApiError, given: Option<&str>, head_method: bool) {
    metrics.refused(error.status());
    let id = request_id(given);
    let response = error.to_response(&id).with_unique_header("X-Request-Id", id);
    let response = response.with_unique_header("X-Content-Type-Options", "nosniff");
    let bytes = Bytes::of(response, Framing { head_method, http10: false, keep_open: false });
    let _ = (&*stream).write_all(&[bytes.head, bytes.body].concat()); // the connection ends anyway
}

/// How a response is framed on its connection.
#[derive(Debug, Clone, Copy)]
struct Framing {
    head_method: bool,
    http10: bool,
    keep_open: bool,
}

/// A response as its connection writes it: the status line and header fields, then the body,
/// whole in memory.
#[derive(Debug, Default)]
struct Bytes {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Bytes {
    /// The framing fields are the transport's own: the response's are dropped.
    fn of(response: Response, framing: Framing) -> Bytes {
        let status = response.status_code;
        let mut head = Vec::with_capacity(512);
        let reason = REASONS.iter().find(|(code, _)| *code == status).map_or("", |(_, reason)| reason);
        let _ = write!(head, "HTTP/1.1 {status} {reason}\r\nDate: {}\r\n", http_date(SystemTime::now()));
        for (name, value) in &response.headers {
            let framing_field =
                ["content-length", "transfer-encoding", "connection"].iter().any(|f| name.eq_ignore_ascii_case(f));
            if name.bytes().chain(value.bytes()).any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                log::error!("response header {name:?} not sent: it has a control character");
            } else if !framing_field {
                let _ = write!(head, "{name}: {value}\r\n");
            }
        }
        let mut body = Vec::new();
        let (mut reader, _) = response.data.into_reader_and_size();
        if let Err(e) = reader.read_to_end(&mut body) {
            log::error!("reading a response body: {e}"); // bodies are in memory: not expected
        }
        if status != 204 {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
        match (framing.keep_open, framing.http10) {
            (false, _) => head.extend_from_slice(b"Connection: close\r\n"),
            (true, true) => head.extend_from_slice(b"Connection: keep-alive\r\n"),
            (true, false) => {}
        }
        head.extend_from_slice(b"\r\n");
        if framing.head_method || matches!(status, 204 | 304) {
            body = Vec::new();
        }
        Bytes { head, body }
    }

    fn slices(&self) -> [IoSlice<'_>; 2] {
        [IoSlice::new(&self.head), IoSlice::new(&self.body)]
    }
}

const REASONS: [(u16, &str); 17] = [
    (200, "OK"),
    (201, "Created"),
    (204, "No Content"),
    (400, "Bad Request"),
    (401, "Unauthorized"),
    (403, "Forbidden"),
    (404, "Not Found"),
    (405, "Method Not Allowed"),
    (413, "Content Too Large"),
    (415, "Unsupported Media Type"),
    (422, "Unprocessable Content"),
    (429, "Too Many Requests"),
    (431, "Request Header Fields Too Large"),
    (500, "Internal Server Error"),
    (501, "Not Implemented"),
    (503, "Service Unavailable"),
    (505, "HTTP Version Not Supported"),
];

/// Requests waiting for a worker, in order of arrival, and how many workers wait for one.
struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
    stop: bool,
}

struct Job {
    request: Request,
    framing: Framing,
    deadline: Instant,
    answer: Arc<Answer>,
}

/// Where a worker leaves one request's response for its connection: `Some(None)` when the
/// request waited past its deadline and did not run.
#[derive(Default)]
struct Answer {
    slot: Mutex<Option<Option<Bytes>>>,
    done: Condvar,
}

impl Answer {
    /// The answer once it is given, or `None` if `until` passes first.
    fn wait(&self, until: Instant) -> Option<Option<Bytes>> {
        let mut slot = lock(&self.slot);
        while slot.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            slot = self.done.wait_timeout(slot, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        slot.take()
    }
}

/// A worker: runs queued requests in order, each to a response whole in memory, until the
/// server stops. A panic is a 500 and the worker lives on.
fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queue = lock(&shared.queue);
            loop {
                match queue.jobs.pop_front() {
                    Some(job) => break job,
                    None if queue.stop => return,
                    None => {
                        queue.idle += 1;
                        queue = shared.queued.wait(queue).unwrap_or_else(PoisonError::into_inner);
                        queue.idle -= 1;
                    }
                }
            }
        };
        let response = (Instant::now() <= job.deadline).then(|| {
            let run = || catch_unwind(AssertUnwindSafe(|| (shared.handler)(&job.request)));
            let response = run().unwrap_or_else(|_| ApiError::Internal("handler panicked".to_owned()).to_response("-"));
            Bytes::of(response, job.framing)
        });
        *lock(&job.answer.slot) = Some(response);
        job.answer.done.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_the_transport() {
        let response = |status: u16, body: &str| {
            Response::from_data("application/json", body.to_owned())
                .with_status_code(status)
                .with_unique_header("Content-Length", "99")
                .with_unique_header("X-A", "b")
        };
        let text = |response, head_method, http10, keep_open| {
            let bytes = Bytes::of(response, Framing { head_method, http10, keep_open });
            (String::from_utf8(bytes.head).unwrap(), String::from_utf8(bytes.body).unwrap())
        };
        let (ok, body) = text(response(200, "abc"), false, false, true);
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\nDate: ") && ok.ends_with("X-A: b\r\nContent-Length: 3\r\n\r\n"),
            "{ok}"
        );
        assert!(!ok.contains("99") && !ok.contains("Server") && body == "abc", "{ok}");
        let (head, body) = text(response(200, "abc"), true, false, true);
        assert!(head.contains("Content-Length: 3\r\n") && body.is_empty(), "HEAD: the length, no body");
        let (empty, body) = text(response(204, "x"), false, false, false);
        assert!(!empty.contains("Content-Length") && empty.ends_with("Connection: close\r\n\r\n") && body.is_empty());
        assert!(text(response(200, "abc"), false, true, true).0.contains("Connection: keep-alive\r\n"));
        let injected = response(200, "").with_unique_header("X-Injected", "a\r\nSet-Cookie: x");
        assert!(!text(injected, false, false, true).0.contains("Set-Cookie"));
    }
}
