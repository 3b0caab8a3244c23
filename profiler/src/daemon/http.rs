//! The daemon's HTTP endpoints: /metrics (asks the engine's thread for a
//! copy of its figures, then encodes it here), /healthz, /readyz.
use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use hyper_util::rt::TokioIo;
use tokio::sync::{oneshot, watch};

use crate::metrics::{Exposition, Format, render};

/// A scrape waiting for the engine's next copy.
pub type ScrapeRequest = oneshot::Sender<Exposition>;

/// State the engine's thread and the endpoints share.
pub struct Shared {
    /// Programs attached and the first discovery done.
    pub ready: AtomicBool,
    /// Monotonic seconds of the engine loop's last turn (liveness).
    pub heartbeat_s: AtomicU64,
    pub scrapes: std::sync::Mutex<mpsc::Sender<ScrapeRequest>>,
}

/// The engine loop is considered stuck after this long without a turn.
const STUCK_AFTER_S: u64 = 10;
/// A scrape waits this long for the engine before answering 503.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn now_s() -> u64 {
    crate::kernel::clock::monotonic_ns() / 1_000_000_000
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn metrics(shared: &Shared, accept: Option<&str>) -> Response<Full<Bytes>> {
    let (tx, rx) = oneshot::channel();
    let sent = shared
        .scrapes
        .lock()
        .map(|s| s.send(tx).is_ok())
        .unwrap_or(false);
    if !sent {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the capture engine has stopped\n",
        );
    }
    let expo = match tokio::time::timeout(SCRAPE_TIMEOUT, rx).await {
        Ok(Ok(e)) => e,
        _ => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the capture engine did not answer within 5 s\n",
            );
        }
    };
    let format = Format::negotiate(accept);
    match render(expo, format) {
        Ok(body) => {
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(format.content_type()),
            );
            r
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed\n",
        ),
    }
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            metrics(&shared, accept).await
        }
        "/healthz" => {
            let last = shared.heartbeat_s.load(Ordering::Relaxed);
            if now_s().saturating_sub(last) <= STUCK_AFTER_S {
                text(StatusCode::OK, "ok\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the capture engine has not run for {} s\n", now_s() - last),
                )
            }
        }
        "/readyz" => {
            if shared.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: attaching programs and discovering sidecars\n",
                )
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; endpoints: /metrics /healthz /readyz\n",
        ),
    }
}

/// Serve on `listener` until `stop` turns true; connections still open
/// then are closed.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(route(shared, req).await) }
                    });
                    // A scraper that hangs up mid-answer is not our error.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
    conns.abort_all();
    Ok(())
}
