//! The pod's application in HTTP/2 meshes: an h2c server (cleartext HTTP/2,
//! prior knowledge, no upgrade) with the same `--delay-us` and `--size` as
//! the HTTP/1.1 app. Every stream is answered on its own task, so many
//! streams of one connection wait out their delays at the same time.
use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response,
    body::Incoming,
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http2,
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Streams a client may open at once on one connection (SETTINGS); well
/// above what the load generators and haproxy's pools use.
pub const MAX_STREAMS: u32 = 1024;

/// Serve on 0.0.0.0:`port` until an accept fails.
pub fn serve(port: u16, delay: Duration, size: usize) -> std::io::Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        // Delays sleep on blocking threads (see `respond`): one per stream waiting.
        .max_blocking_threads(2048)
        .enable_all()
        .build()?
        .block_on(async {
            let listener = TcpListener::bind(("0.0.0.0", port)).await?;
            serve_on(listener, delay, size).await
        })
}

/// Accept h2c connections on `listener`, each served on its own task.
pub async fn serve_on(listener: TcpListener, delay: Duration, size: usize) -> std::io::Result<()> {
    let body = Bytes::from(vec![b'x'; size]);
    loop {
        let (conn, _) = listener.accept().await?;
        conn.set_nodelay(true)?;
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(req, delay, body.clone()));
            // hyper spawns each stream's service on the executor: streams run concurrently.
            let _ = http2::Builder::new(TokioExecutor::new())
                .max_concurrent_streams(MAX_STREAMS)
                .serve_connection(TokioIo::new(conn), service)
                .await;
        });
    }
}

/// Read the request body, wait `delay`, answer 200 with `body`.
async fn respond(
    req: Request<Incoming>,
    delay: Duration,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // A body that fails mid-way is answered all the same, as the HTTP/1.1 app
    // would (its connection ends there anyway).
    let _ = req.into_body().collect().await;
    if !delay.is_zero() {
        // tokio's timer ticks in milliseconds; a thread sleep keeps the
        // microsecond delays of the HTTP/1.1 app.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
    }
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// 20 streams on one connection, each delayed 100 ms, finish in far less
    /// than 20 × 100 ms, each with a 200 and the configured body size.
    #[test]
    fn streams_of_one_connection_wait_concurrently() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(serve_on(listener, Duration::from_millis(100), 333));
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .expect("h2 handshake");
            tokio::spawn(conn);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let mut s = sender.clone();
                tasks.push(tokio::spawn(async move {
                    let req = Request::get(format!("http://{addr}/"))
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    let resp = s.send_request(req).await.expect("response");
                    let status = resp.status();
                    let body = resp.into_body().collect().await.expect("body").to_bytes();
                    (status, body.len())
                }));
            }
            for t in tasks {
                let (status, len) = t.await.expect("task");
                assert_eq!(status, 200);
                assert_eq!(len, 333);
            }
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(100),
                "delay skipped: {took:?}"
            );
            assert!(
                took < Duration::from_millis(1000),
                "streams serialized: {took:?}"
            );
        });
    }
}
