//! The `/metrics` endpoint, kept off the loop's thread. Its own thread (a small current-thread
//! runtime, `metrics`) accepts at most `MAX_CONNECTIONS` at a time (the rest wait in the
//! kernel's backlog), gives each `CONNECTION_TIME` in all and `REQUEST_LIMIT` bytes of head,
//! and answers from the latest `Snapshot`, rendered once per snapshot. A scrape asks the loop
//! for a fresh one (`Feed::wanted`, a `select!` arm after netlink) and waits at most
//! `FRESH_WAIT` for it, else it gets the previous one; the loop makes at most one snapshot per
//! `SNAPSHOT_EVERY` however many clients ask. So the loop never accepts, reads, renders or
//! writes for a scrape, and a flood costs it at most ten snapshot copies a second, taken only
//! when netlink has nothing ready.

use crate::metrics::{Metrics, Snapshot, CONTENT_TYPE};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Bytes of request (line and headers) read before the client is told 431 and dropped.
pub const REQUEST_LIMIT: usize = 4096;
/// Reading the request and writing the answer, together.
pub const CONNECTION_TIME: Duration = Duration::from_secs(2);
/// The loop's minimum interval between snapshots.
pub const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);
/// How long a scrape waits for the loop's fresh snapshot before taking the previous one.
pub const FRESH_WAIT: Duration = Duration::from_millis(250);

/// The loop's side: answers the endpoint's requests for a snapshot.
pub struct Feed {
    tx: watch::Sender<Published>,
    /// Scrapes' requests for a snapshot (a full channel means one is already asked for).
    want: mpsc::Receiver<()>,
    /// Elapsed once `SNAPSHOT_EVERY` has passed since the last snapshot. Kept, not made per
    /// loop turn: an elapsed timer polls as ready without touching the timer wheel.
    next: Pin<Box<Sleep>>,
    seq: u64,
}

/// A snapshot and its sequence number (the render cache's key).
type Published = (u64, Arc<Snapshot>);

impl Feed {
    /// Bind `addr` and start serving; `None` (after an error line) if it cannot listen.
    pub fn start(addr: SocketAddr, metrics: Metrics) -> Option<Feed> {
        let disabled = |e: std::io::Error| {
            tracing::error!("metrics endpoint disabled: cannot listen on {addr}: {e}");
        };
        let listener = match std::net::TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                disabled(e);
                return None;
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let (tx, rx) = watch::channel((0, Arc::new(Snapshot::default())));
        let (w, want) = mpsc::channel(1);
        let spawned = runtime.and_then(|rt| {
            listener.set_nonblocking(true)?;
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || {
                    rt.block_on(async move {
                        match TcpListener::from_std(listener) {
                            Ok(l) => serve(l, rx, w, metrics).await,
                            Err(e) => tracing::error!("metrics endpoint disabled: {e}"),
                        }
                    })
                })
        });
        if let Err(e) = spawned {
            disabled(e);
            return None;
        }
        Some(Feed {
            tx,
            want,
            next: Box::pin(tokio::time::sleep_until(Instant::now())),
            seq: 0,
        })
    }

    /// Resolves when a scrape wants a snapshot and the last one is `SNAPSHOT_EVERY` old.
    pub async fn wanted(&mut self) {
        self.next.as_mut().await;
        if self.want.recv().await.is_none() {
            // The endpoint's thread is gone: nothing will ask again.
            std::future::pending::<()>().await;
        }
    }

    pub fn publish(&mut self, snap: Snapshot) {
        self.next.as_mut().reset(Instant::now() + SNAPSHOT_EVERY);
        self.seq += 1;
        self.tx.send_replace((self.seq, Arc::new(snap)));
    }
}

/// The latest snapshot's text, rendered once however many scrapes read it.
type Rendered = Arc<Mutex<(u64, Arc<String>)>>;

async fn serve(
    listener: TcpListener,
    rx: watch::Receiver<Published>,
    want: mpsc::Sender<()>,
    metrics: Metrics,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let rendered: Rendered = Arc::new(Mutex::new((0, Arc::new(String::new()))));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let (rx, want, metrics, rendered) =
                    (rx.clone(), want.clone(), metrics.clone(), rendered.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        CONNECTION_TIME,
                        answer(stream, rx, want, &metrics, &rendered),
                    )
                    .await;
                    drop(permit);
                });
            }
            // EMFILE and friends: back off instead of spinning on the error.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Not all of the head has arrived yet.
    Partial,
    Metrics,
    NotFound,
    /// Over `REQUEST_LIMIT` without the end of the head, or not an HTTP request line.
    Bad,
}

/// Classify the bytes read so far.
pub fn classify(head: &[u8]) -> Request {
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if head.len() >= REQUEST_LIMIT {
            Request::Bad
        } else {
            Request::Partial
        };
    };
    if end + 4 > REQUEST_LIMIT {
        return Request::Bad;
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with(b"HTTP/1.")) {
        return Request::Bad;
    }
    let path = target
        .unwrap_or_default()
        .split(|b| *b == b'?')
        .next()
        .unwrap_or_default();
    match (method, path) {
        (Some(b"GET"), b"/metrics") => Request::Metrics,
        _ => Request::NotFound,
    }
}

async fn answer(
    mut stream: TcpStream,
    mut rx: watch::Receiver<Published>,
    want: mpsc::Sender<()>,
    metrics: &Metrics,
    rendered: &Rendered,
) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let request = loop {
        match classify(&head) {
            Request::Partial => {}
            r => break r,
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    let (status, ctype, body) = match request {
        Request::Metrics => {
            rx.borrow_and_update();
            let _ = want.try_send(());
            let _ = tokio::time::timeout(FRESH_WAIT, rx.changed()).await;
            let snap = rx.borrow_and_update().clone();
            ("200 OK", CONTENT_TYPE, text(metrics, rendered, &snap))
        }
        Request::NotFound => (
            "404 Not Found",
            "text/plain",
            Arc::new("only GET /metrics is served\n".to_string()),
        ),
        _ => (
            "400 Bad Request",
            "text/plain",
            Arc::new(format!(
                "a GET request with at most {REQUEST_LIMIT} bytes of head\n"
            )),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The snapshot's text, from the cache when this snapshot was already rendered.
fn text(metrics: &Metrics, rendered: &Rendered, (seq, snap): &Published) -> Arc<String> {
    let mut r = rendered.lock().unwrap_or_else(|p| p.into_inner());
    if r.0 != *seq || r.1.is_empty() {
        *r = (*seq, Arc::new(metrics.render(snap)));
    }
    r.1.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified() {
        let long = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(REQUEST_LIMIT)
        );
        let table: [(&[u8], Request); 9] = [
            (b"", Request::Partial),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", Request::Partial),
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Request::Metrics,
            ),
            (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", Request::Metrics),
            (b"GET / HTTP/1.1\r\n\r\n", Request::NotFound),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Request::NotFound),
            (b"GET /metrics\r\n\r\n", Request::Bad),
            (long.as_bytes(), Request::Bad),
            (&[b'a'; REQUEST_LIMIT], Request::Bad),
        ];
        for (head, want) in table {
            assert_eq!(classify(head), want, "{:?}", String::from_utf8_lossy(head));
        }
    }
}
