//! The HTTP listener: accepts connections up to a cap and serves each with
//! HTTP/1.1 or cleartext HTTP/2 (prior knowledge, for gRPC clients) on the
//! same port, closing connections that are slow or idle (issue 13).
//!
//! Per connection, while no request is in flight, one deadline applies:
//!
//! - **header timeout**: from the accept, or from the first byte of a later
//!   request on a kept-alive HTTP/1 connection, until a request's head is
//!   complete (a dribbled request line or header block is cut off);
//! - **idle timeout**: between requests, when nothing has arrived since the
//!   last response (HTTP/1 keep-alive, HTTP/2 connections; on HTTP/2 the
//!   client's own frames — pings, window updates — do not start the header
//!   clock, so an idle HTTP/2 connection lives for the idle timeout).
//!
//! A connection past its deadline is closed (nothing of it is in flight).
//! The **body timeout** is enforced where the body is read (`api::buffer_body`,
//! a 408 in the family's envelope).
//!
//! A handler's own time is not bounded here, but writing is: the **write
//! timeout** closes a connection, whatever is in flight on it, when
//!
//! - a write has waited that long for the socket to take a byte (a client
//!   that stopped reading; HTTP/1 and HTTP/2), or
//! - on HTTP/2, a response has started and hyper has not asked its body for
//!   anything for that long (a client that keeps its flow-control window
//!   shut while answering pings, so the socket itself never blocks). Herald's
//!   response bodies are ready at once, so hyper not asking means the
//!   client's window is shut.
//!
//! At the **connection cap**, a new connection makes room: a connection
//! past its write timeout, else, of the open connections with no request in
//! flight, the one that has waited longest (for a head, or idle) is closed,
//! as nginx reuses its keep-alive connections. Only when every connection has a request in flight does the
//! new one wait for a connection to end, and the ones after it wait in the
//! kernel's listen backlog. So slow clients cannot keep a quick request such
//! as `/healthz` out, however many of them there are.
//!
//! Shutdown: stop accepting, ask every connection to finish (HTTP/1 closes
//! once its current response is written, HTTP/2 sends GOAWAY), and return
//! when all have closed; the caller bounds that wait.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Bytes, HttpBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::HttpConfig;

/// Open files kept free of connections: database connections (SQLite
/// readers and pool, PostgreSQL pool), SMTP connections, outbox files.
const RESERVED_FILES: u64 = 256;

/// The connection cap in force: the configured one, lowered to what the
/// open-file limit allows. The soft limit is first raised to the hard one,
/// which any process may do; without room for the cap, accepting would fail
/// with "too many open files" and take the database's files with it.
pub fn connection_cap(configured: usize) -> usize {
    let configured = configured.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let Ok(files) = rlimit::increase_nofile_limit(u64::MAX) else { return configured };
    let room = usize::try_from(files.saturating_sub(RESERVED_FILES).max(files / 2)).unwrap_or(usize::MAX).max(1);
    if configured > room {
        tracing::warn!(
            configured,
            cap = room,
            open_file_limit = files,
            "the connection cap is lowered to what the open-file limit allows (raise it with ulimit -n)"
        );
        room
    } else {
        configured
    }
}

/// Serves `app` on `listener` until `shutdown` resolves and every
/// connection has closed.
pub async fn serve(listener: TcpListener, app: Router, limits: HttpConfig, shutdown: impl Future<Output = ()>) {
    let cap = connection_cap(limits.max_connections);
    let permits = Arc::new(Semaphore::new(cap));
    let open = Arc::new(Open { write_timeout: limits.write_timeout, ..Open::default() });
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = Arc::new(builder());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of files or memory: pause instead of spinning; open
                    // connections close by their deadlines meanwhile.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                // Retried while waiting: a busy connection may turn idle.
                let mut waited = None;
                while waited.is_none() {
                    open.make_room();
                    tokio::select! {
                        () = &mut shutdown => break,
                        permit = permits.clone().acquire_owned() => waited = Some(permit),
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
                match waited {
                    Some(Ok(permit)) => permit,
                    _ => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let held = Held { _permit: permit, open: open.clone(), activity: open.add() };
        tokio::spawn(connection(stream, peer, app.clone(), builder.clone(), limits.clone(), stop_rx.clone(), held));
    }
    // New connections are refused from here on.
    drop(listener);
    let _ = stop_tx.send(true);
    // Each connection holds a permit until it ends.
    let _ = permits.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX)).await;
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own header timeout would also run while a kept-alive
    // connection waits for its next request, making the idle timeout moot;
    // `connection` keeps both clocks instead.
    builder.http1().keep_alive(true).header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Finds peers that vanished without closing.
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(200);
    builder
}

/// The open connections, for [`Open::make_room`].
#[derive(Default)]
struct Open {
    write_timeout: Duration,
    next: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Open {
    fn add(&self) -> (u64, Arc<Activity>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new());
        self.connections.lock().unwrap_or_else(PoisonError::into_inner).insert(id, activity.clone());
        (id, activity)
    }

    /// Closes a connection past its write timeout, else the connection
    /// without a request in flight that has waited longest, if there is one.
    fn make_room(&self) {
        let connections = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        let longest = connections
            .values()
            .map(|a| (a, a.write_stalled(self.write_timeout)))
            .filter(|(a, stalled)| {
                !a.evicted.load(Ordering::Acquire) && (*stalled || a.in_flight.load(Ordering::Acquire) == 0)
            })
            .min_by_key(|(a, stalled)| (!stalled, a.waiting_since()))
            .map(|(a, _)| a);
        if let Some(activity) = longest {
            activity.evicted.store(true, Ordering::Release);
            activity.changed.notify_one();
        }
    }
}

/// What a connection's task holds: its place under the cap and in [`Open`].
struct Held {
    _permit: OwnedSemaphorePermit,
    open: Arc<Open>,
    activity: (u64, Arc<Activity>),
}

impl Drop for Held {
    fn drop(&mut self) {
        self.open.connections.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.activity.0);
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: HttpConfig,
    mut stop: watch::Receiver<bool>,
    held: Held,
) {
    let activity = held.activity.1.clone();
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone(), first_read: true });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let busy = activity.begin();
            // The client's address, as axum's `ConnectInfo` (console sign-in
            // attempts are limited per address).
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let response = app.clone().oneshot(req);
            // The request stays in flight until its body is written out.
            async move { response.await.map(|res| res.map(|body| Tracked::new(body, busy))) }
        })
    };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(err) = ended {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => {}
            () = tokio::time::sleep_until(deadline) => {
                if activity.expired(&limits) {
                    // Nothing is in flight, or writing has stalled: dropping
                    // the connection closes it.
                    tracing::debug!("connection closed: slow, idle, not reading, or making room");
                    return;
                }
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection is doing, for its deadlines. Times are milliseconds
/// since the accept.
struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    /// When the last request in flight finished.
    idle_since: AtomicU64,
    /// When the first byte arrived since then ([`NOTHING`]: none yet).
    head_started: AtomicU64,
    /// Since when a write has waited for the socket ([`NOTHING`]: none waits).
    write_blocked_since: AtomicU64,
    /// Responses started and not yet written out.
    writing: AtomicUsize,
    /// When hyper last asked a response body for a frame, or the first of
    /// the responses being written started.
    body_asked_at: AtomicU64,
    /// The client spoke HTTP/2 (its frames between requests are not heads).
    http2: AtomicBool,
    /// Chosen to make room for a new connection: close when nothing is in flight.
    evicted: AtomicBool,
    /// Wakes the connection's task to recompute its deadline.
    changed: Notify,
}

const NOTHING: u64 = u64::MAX;

/// A request in flight; ending it starts the idle clock.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.idle_since.store(a.now(), Ordering::Release);
            a.head_started.store(NOTHING, Ordering::Release);
            a.changed.notify_one();
        }
    }
}

impl Activity {
    fn new() -> Self {
        Activity {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            // A new connection is waiting for its first head from the start.
            head_started: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(NOTHING),
            writing: AtomicUsize::new(0),
            body_asked_at: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(NOTHING - 1)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
        Busy(self.clone())
    }

    /// Bytes arrived.
    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.http2.load(Ordering::Relaxed)
            && self.head_started.compare_exchange(NOTHING, self.now(), Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// The socket took bytes.
    fn wrote_some(&self) {
        self.write_blocked_since.store(NOTHING, Ordering::Release);
    }

    /// A write has to wait for the socket.
    fn write_blocked(&self) {
        if self.write_blocked_since.compare_exchange(NOTHING, self.now(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.changed.notify_one();
        }
    }

    /// When writing is to be given up if nothing moves (see the module's
    /// write timeout), if anything waits to be written.
    fn write_deadline(&self, timeout: Duration) -> Option<Instant> {
        let at = |ms: u64| self.born + Duration::from_millis(ms) + timeout;
        let blocked = match self.write_blocked_since.load(Ordering::Acquire) {
            NOTHING => None,
            since => Some(at(since)),
        };
        let unasked = (self.http2.load(Ordering::Relaxed) && self.writing.load(Ordering::Acquire) > 0)
            .then(|| at(self.body_asked_at.load(Ordering::Acquire)));
        blocked.into_iter().chain(unasked).min()
    }

    fn write_stalled(&self, timeout: Duration) -> bool {
        self.write_deadline(timeout).is_some_and(|due| Instant::now() >= due)
    }

    /// Since when the connection has waited for a head or a next request.
    fn waiting_since(&self) -> Instant {
        let ms = match self.head_started.load(Ordering::Acquire) {
            NOTHING => self.idle_since.load(Ordering::Acquire),
            started => started,
        };
        self.born + Duration::from_millis(ms)
    }

    /// When the connection is due to close if nothing changes.
    fn deadline(&self, limits: &HttpConfig) -> Instant {
        let waiting = self.wait_deadline(limits);
        self.write_deadline(limits.write_timeout).map_or(waiting, |writing| writing.min(waiting))
    }

    /// The header or idle deadline (far off while a request is in flight).
    fn wait_deadline(&self, limits: &HttpConfig) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // The handler's own bounds apply (body timeout, database timeouts).
            return Instant::now() + Duration::from_secs(3600);
        }
        if self.evicted.load(Ordering::Acquire) {
            return Instant::now();
        }
        let at = |ms: u64, plus: Duration| self.born + Duration::from_millis(ms) + plus;
        match self.head_started.load(Ordering::Acquire) {
            NOTHING => at(self.idle_since.load(Ordering::Acquire), limits.idle_timeout),
            started => at(started, limits.header_timeout),
        }
    }

    fn expired(&self, limits: &HttpConfig) -> bool {
        self.write_stalled(limits.write_timeout)
            || (self.in_flight.load(Ordering::Acquire) == 0
                && (self.evicted.load(Ordering::Acquire) || Instant::now() >= self.wait_deadline(limits)))
    }
}

/// A response body that holds its request's [`Busy`] until hyper drops it
/// (written out, or the connection ended), and tells [`Activity`] when
/// hyper asks it for a frame.
struct Tracked {
    body: axum::body::Body,
    busy: Busy,
}

impl Tracked {
    fn new(body: axum::body::Body, busy: Busy) -> Self {
        let a = &busy.0;
        if a.writing.fetch_add(1, Ordering::AcqRel) == 0 {
            a.body_asked_at.store(a.now(), Ordering::Release);
            a.changed.notify_one();
        }
        Tracked { body, busy }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.busy.0.writing.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let a = &self.busy.0;
        a.body_asked_at.store(a.now(), Ordering::Release);
        Pin::new(&mut self.body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The TCP stream, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    first_read: bool,
}

/// What an HTTP/2 prior-knowledge client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            if self.first_read {
                self.first_read = false;
                if buf.filled()[before..].starts_with(H2_PREFACE) {
                    self.activity.http2.store(true, Ordering::Relaxed);
                }
            }
            self.activity.read_some();
        }
        polled
    }
}

impl Watched {
    /// Tells [`Activity`] whether the socket took bytes or made a write wait.
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => self.activity.wrote_some(),
            Poll::Pending => self.activity.write_blocked(),
            _ => {}
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
