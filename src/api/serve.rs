//! The API's accept loop: plain HTTP/1.1 or TLS, with the limits a public listener needs.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so one client could hold
//! any number of connections open forever by sending a request head one byte at a time
//! (slowloris). This loop serves the same router through hyper directly and bounds, for
//! plain and TLS connections alike:
//!
//! - open connections, by `api.max_connections` permits: at the cap the loop stops
//!   accepting, so further connections wait in the kernel's listen backlog (and the
//!   client's connect timeout) until one closes; none is accepted and then dropped;
//! - the request head, by `api.header_read_timeout`: a connection that has not sent a
//!   complete head within it (also an idle keep-alive connection) is closed;
//! - the TLS handshake, by `api.tls_handshake_timeout`; the permit is held during it.
//!
//! Shutdown stops accepting, asks every connection to finish its request in flight and
//! waits for them, as `axum::serve`'s graceful shutdown did.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::ApiConfig;
use crate::tls::TlsError;

/// The connection limits and the optional TLS configuration of one listener.
#[derive(Clone)]
pub struct ServeOptions {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub tls_handshake_timeout: Duration,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    /// The defaults of `api.*`, plain HTTP.
    fn default() -> Self {
        let api = ApiConfig::default();
        Self {
            header_read_timeout: api.header_read_timeout,
            max_connections: api.max_connections as usize,
            tls_handshake_timeout: api.tls_handshake_timeout,
            tls: None,
        }
    }
}

impl ServeOptions {
    /// The limits of `api`, reading its TLS files when `api.tls` is set.
    pub fn from_config(api: &ApiConfig) -> Result<Self, TlsError> {
        let tls = match &api.tls {
            Some(files) => Some(crate::tls::server_config(&files.cert_file, &files.key_file)?),
            None => None,
        };
        Ok(Self {
            header_read_timeout: api.header_read_timeout,
            max_connections: api.max_connections as usize,
            tls_handshake_timeout: api.tls_handshake_timeout,
            tls,
        })
    }
}

/// Serves `router` on `listener` under `options` until `shutdown` completes, then waits for
/// the connections to finish the requests they are serving.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // The permit first: at the cap, connections queue in the backlog, not in memory.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of descriptors or a connection reset before accept: neither ends
                    // the server. A short pause keeps a persistent error from spinning.
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let router = router.clone();
        let options = options.clone();
        match &acceptor {
            None => {
                tokio::spawn(serve_one(stream, router, &options, watcher, permit));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(options.tls_handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_one(tls, router, &options, watcher, permit).await,
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One connection, HTTP/1.1, until it closes; the permit returns when it does.
fn serve_one<S>(
    stream: S,
    router: Router,
    options: &ServeOptions,
    watcher: Watcher,
    permit: OwnedSemaphorePermit,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout).keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let connection = watcher.watch(connection);
    async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "API connection ended with an error");
        }
        drop(permit);
    }
}
