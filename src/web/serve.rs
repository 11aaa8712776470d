//! The accept loop. `axum::serve` gives hyper no timer, so hyper's header read timeout never
//! fires and a client sending its request line a byte at a time holds a connection (and a
//! task) for as long as it likes. This loop is `axum::serve` with that timeout on: the same
//! hyper-util builder, the peer as `ConnectInfo<Peer>`, and the same graceful shutdown (stop
//! accepting, let every connection finish its request, then return). Request bodies are
//! bounded by the router's request timeout, which covers reading them. It serves several
//! listeners at once, TCP and Unix sockets alike (`--listen`, [`super::listen`]).
//!
//! hyper's header read timeout starts only once the HTTP/1 connection is running: a client
//! that connects and sends nothing, or the first bytes of an HTTP/2 preface (the auto
//! builder waits for the whole preface to pick a protocol), is never timed. So each
//! connection must also deliver its first request's headers within the same limit. After
//! that, hyper times the wait for every next request's headers from when the previous
//! response was written, so a kept-alive connection that goes idle is closed after the same
//! limit. HTTP/2 is not compiled in (hyper's `http2` feature is off), so there is no HTTP/2
//! connection to keep idle: a client's HTTP/2 preface is answered as a malformed HTTP/1
//! request and the connection closed.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::listen::{Connection, Listener, Peer};

/// How long a client may take to send a request's headers (and how long a kept-alive
/// connection may wait for its next request) before its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on every listener until `shutdown` completes, then drains open connections.
pub async fn serve(
    listeners: Vec<Listener>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listeners, router, HEADER_READ_TIMEOUT, shutdown).await
}

/// [`serve`] with another header read timeout (tests use a short one).
async fn serve_with(
    listeners: Vec<Listener>,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (draining, drain_signal) = watch::channel(false);
    let mut accepting = JoinSet::new();
    for listener in listeners {
        accepting.spawn(accept_loop(listener, router.clone(), header_read_timeout, drain_signal.clone()));
    }
    shutdown.await;
    let _ = draining.send(true);
    while accepting.join_next().await.is_some() {}
    Ok(())
}

/// Accepts on one listener until the drain begins, then waits for its connections.
async fn accept_loop(listener: Listener, router: Router, header_read_timeout: Duration, drain: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let mut stop = drain.clone();
    loop {
        tokio::select! {
            _ = drained(&mut stop) => break,
            // Reap finished connections so the set does not grow with every client.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((connection, peer)) => {
                    let (router, drain) = (router.clone(), drain.clone());
                    connections.spawn(async move {
                        match connection {
                            Connection::Tcp(stream) => {
                                no_delay(&stream);
                                serve_connection(stream, peer, router, header_read_timeout, drain).await;
                            }
                            Connection::Unix(stream) => {
                                serve_connection(stream, peer, router, header_read_timeout, drain).await;
                            }
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    // Dropping a Unix listener also removes its socket file: no new connections.
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Completes once the drain has begun. (`wait_for`'s guard is not `Send`: dropped here
/// rather than kept in a task's state.)
async fn drained(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|draining| *draining).await;
}

/// Without it, a body written in several pieces (static files, the audit export) waits on
/// Nagle's algorithm for the peer's delayed ACK: ~40 ms per response on a kept-alive
/// connection.
fn no_delay(stream: &tokio::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: Peer,
    router: Router,
    header_read_timeout: Duration,
    mut drain: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let first_request = Arc::new(Notify::new());
    let arrived = first_request.clone();
    let service = router.map_request(move |mut request: Request<Incoming>| {
        arrived.notify_one();
        request.extensions_mut().insert(ConnectInfo(peer));
        request.map(Body::new)
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        // Dropping the connection closes it.
        _ = no_request_in_time(&first_request, header_read_timeout) => return,
        _ = drained(&mut drain) => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// Completes when the connection's first request has not arrived (its headers read) within
/// `limit`; once it has, never.
async fn no_request_in_time(first_request: &Notify, limit: Duration) {
    if tokio::time::timeout(limit, first_request.notified()).await.is_ok() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::web::listen::Listen;

    const SHORT: Duration = Duration::from_millis(400);

    /// A server whose one route answers with the peer it saw, on `listen`.
    async fn start(listen: &[Listen]) -> (Vec<Listen>, tokio::sync::oneshot::Sender<()>) {
        let router = Router::new()
            .route("/peer", get(|ConnectInfo(peer): ConnectInfo<Peer>| async move { format!("{peer:?}") }));
        let mut listeners = Vec::new();
        for value in listen {
            listeners.push(Listener::bind(value).await.unwrap());
        }
        let bound = listeners.iter().map(|listener| listener.local().unwrap()).collect();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_with(listeners, router, SHORT, async {
            let _ = stopped.await;
        }));
        (bound, stop)
    }

    /// Sends `request` and reads until `marker` arrives; returns what was read.
    async fn exchange(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), request: &[u8], marker: &str) -> String {
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        while !String::from_utf8_lossy(&answer).contains(marker) {
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.unwrap().unwrap();
            assert!(read > 0, "closed before {marker:?}: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buffer[..read]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// How long until the server closes the connection (None: still open after `limit`).
    async fn closed_within(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut buffer = [0u8; 1024];
        loop {
            match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buffer)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => {}
            }
        }
    }

    const GET_PEER: &[u8] = b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n";

    #[tokio::test]
    async fn tcp_and_unix_listeners_serve_the_same_router_and_tell_their_peers_apart() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sock");
        let (bound, stop) = start(&[Listen::Tcp("127.0.0.1:0".parse().unwrap()), Listen::Unix(socket.clone())]).await;
        let Listen::Tcp(addr) = bound[0] else { panic!("{bound:?}") };
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let answer = exchange(&mut tcp, GET_PEER, "Tcp(127.0.0.1:").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let mut unix = tokio::net::UnixStream::connect(&socket).await.unwrap();
        let answer = exchange(&mut unix, GET_PEER, "Unix").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        drop((tcp, unix));
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), async {
            while socket.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the socket file is removed at shutdown");
    }

    #[tokio::test]
    async fn a_kept_alive_connection_that_goes_idle_is_closed_after_the_header_timeout() {
        let (bound, _stop) = start(&[Listen::Tcp("127.0.0.1:0".parse().unwrap())]).await;
        let Listen::Tcp(addr) = bound[0] else { panic!("{bound:?}") };
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        exchange(&mut stream, GET_PEER, "Tcp(").await;
        // Idle between requests, then a second request in time: still served.
        tokio::time::sleep(SHORT / 2).await;
        exchange(&mut stream, GET_PEER, "Tcp(").await;
        let closed = closed_within(&mut stream, SHORT * 5).await.expect("an idle kept-alive connection is closed");
        assert!(closed >= SHORT - Duration::from_millis(50), "closed early, after {closed:?}");
    }

    /// HTTP/2 is not compiled in, so no HTTP/2 connection can sit idle with no timeout
    /// (hyper's HTTP/1 header timeout does not apply to it). If hyper's `http2` feature ever
    /// comes in (say, through another crate's features), this fails: give HTTP/2 connections
    /// an idle limit (keep-alive pings, a cap on idle time) before letting it.
    #[tokio::test]
    async fn an_http2_prior_knowledge_client_is_not_served_http2() {
        let (bound, _stop) = start(&[Listen::Tcp("127.0.0.1:0".parse().unwrap())]).await;
        let Listen::Tcp(addr) = bound[0] else { panic!("{bound:?}") };
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The connection preface, then an empty SETTINGS frame.
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "the connection is closed");
        // An HTTP/2 server's first frame is its SETTINGS (type 4): a 9-byte header, type at 3.
        assert!(answer.get(3) != Some(&4) || answer.starts_with(b"HTTP/1.1"), "answered as HTTP/2: {answer:?}");
    }
}
