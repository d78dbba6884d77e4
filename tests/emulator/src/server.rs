//! The axum server task both emulators run on: bind, serve, shut down (gracefully, or by abort on drop).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`Server::shutdown`] waits for open connections before aborting the task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A bound listener, before the router (which needs the base URL) is built.
pub(crate) struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Bound {
    /// Binds `addr` (use port 0 for a random one).
    pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
        let listener = TcpListener::bind(addr).await?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        Ok(Bound { listener, addr })
    }

    /// `http://IP:PORT`, no trailing slash; an unspecified bind address shows as 127.0.0.1.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts serving `router` on a tokio task.
    pub(crate) fn serve(self, router: Router) -> Server {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // TCP_NODELAY, as real API front ends answer: with Nagle's algorithm a response
            // split over two segments waits for the client's delayed ACK (40-200 ms per call).
            let listener = self.listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                // A dropped sender also means "stop".
                let _ = rx.await;
            });
            if let Err(err) = serve.await {
                eprintln!("emulator server stopped: {err}");
            }
        });
        Server {
            url: format!("http://{}", self.addr),
            stop: Some(tx),
            task: Some(task),
        }
    }
}

/// A running server task. Dropping it aborts the task.
pub(crate) struct Server {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Stops accepting, lets in-flight requests finish (at most [`SHUTDOWN_GRACE`]), then stops.
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
