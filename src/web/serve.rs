//! The accept loop. `axum::serve` gives hyper no timer, so hyper's header read timeout never
//! fires and a client sending its request line a byte at a time holds a connection (and a
//! task) for as long as it likes. This loop is `axum::serve` with that timeout on: the same
//! hyper-util builder, the peer address as `ConnectInfo`, and the same graceful shutdown
//! (stop accepting, let every connection finish its request, then return). Request bodies
//! are bounded by the router's request timeout, which covers reading them.
//!
//! hyper's header read timeout starts only once the HTTP/1 connection is running: a client
//! that connects and sends nothing, or the first bytes of an HTTP/2 preface (the auto
//! builder waits for the whole preface to pick a protocol), is never timed. So each
//! connection must also deliver its first request's headers within the same limit.
use std::future::Future;
use std::net::SocketAddr;
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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long a client may take to send a request's headers before its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes, then drains open connections.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let (draining, drain_signal) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connections so the set does not grow with every client.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, router.clone(), drain_signal.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = draining.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, router: Router, mut drain: watch::Receiver<bool>) {
    // Without it, a body written in several pieces (static files, the audit export) waits
    // on Nagle's algorithm for the peer's delayed ACK: ~40 ms per response on a kept-alive
    // connection.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    let first_request = Arc::new(Notify::new());
    let arrived = first_request.clone();
    let service = router.map_request(move |mut request: Request<Incoming>| {
        arrived.notify_one();
        request.extensions_mut().insert(ConnectInfo(peer));
        request.map(Body::new)
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        // Dropping the connection closes it.
        _ = no_request_in_time(&first_request) => return,
        _ = drain.wait_for(|draining| *draining) => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// Completes when the connection's first request has not arrived (its headers read) within
/// [`HEADER_READ_TIMEOUT`]; once it has, never.
async fn no_request_in_time(first_request: &Notify) {
    if tokio::time::timeout(HEADER_READ_TIMEOUT, first_request.notified()).await.is_ok() {
        std::future::pending::<()>().await;
    }
}
