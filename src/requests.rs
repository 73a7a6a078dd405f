//! Request plumbing on redis-rs's multiplexed connections, shared by start-up and flushes:
//! table keys written straight into command buffers, chunked pipelines kept two in flight,
//! and polling a request once so it is queued at once. A multiplexed connection's socket I/O
//! runs in its own task, which on our single-threaded runtime only moves when the caller
//! yields; these helpers decide when that happens.

use crate::dbconfig::DbLocation;
use redis::aio::ConnectionManager;
use redis::RedisResult;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Poll `fut` once with the caller's context. A redis-rs request's first poll queues it on its
/// connection; the result is `Ready` only if it somehow finished at once.
pub async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// Start-up pipelines are sent in chunks of this many commands, at most two in flight
/// (bounds peak memory; the order is unchanged).
pub const STREAM_CHUNK: usize = 256;

type Reply<T> = Pin<Box<dyn Future<Output = RedisResult<Vec<T>>>>>;

/// Send one pipeline per chunk, in order, keeping at most two in flight: chunk k+1 is built
/// and handed to the connection while Redis works on chunk k, so start-up costs about the
/// larger of our encoding and Redis's execution rather than their sum, and memory stays
/// bounded by two chunks. Replies come back in chunk order, concatenated.
pub async fn two_in_flight<C, T>(
    con: &ConnectionManager,
    chunks: impl Iterator<Item = C>,
    mut build: impl FnMut(C) -> redis::Pipeline,
) -> RedisResult<Vec<T>>
where
    T: redis::FromRedisValue + 'static,
{
    let mut out = Vec::new();
    let mut previous: Option<Started<T>> = None;
    for chunk in chunks {
        let pipe = build(chunk);
        let mut con = con.clone();
        let reply: Reply<T> = Box::pin(async move { pipe.query_async(&mut con).await });
        let started = Started::start(reply).await;
        if let Some(p) = previous.take() {
            out.extend(p.finish().await?);
        }
        previous = Some(started);
    }
    if let Some(p) = previous {
        out.extend(p.finish().await?);
    }
    Ok(out)
}

/// Hand `pipe` to `con` at once (see `Started::start`); its replies are collected later with
/// `finish`, so the caller can build the next request while Redis works on this one.
pub(crate) async fn send<T>(con: &ConnectionManager, pipe: redis::Pipeline) -> Started<T>
where
    T: redis::FromRedisValue + 'static,
{
    let mut con = con.clone();
    Started::start(Box::pin(async move { pipe.query_async(&mut con).await })).await
}

/// A request that has been handed to its connection (polled once), or already answered.
pub(crate) enum Started<T> {
    Waiting(Reply<T>),
    Done(RedisResult<Vec<T>>),
}

impl<T> Started<T> {
    /// Poll once (which queues the request on the multiplexed connection), then yield so the
    /// connection's task writes it to the socket before the caller builds the next one.
    async fn start(mut reply: Reply<T>) -> Started<T> {
        let first = poll_once(&mut reply).await;
        tokio::task::yield_now().await;
        match first {
            Poll::Ready(r) => Started::Done(r),
            Poll::Pending => Started::Waiting(reply),
        }
    }

    pub(crate) async fn finish(self) -> RedisResult<Vec<T>> {
        match self {
            Started::Waiting(reply) => reply.await,
            Started::Done(r) => r,
        }
    }
}

/// `<table><sep><row>` written straight into a command's buffer (no String per key).
pub struct Key<'a> {
    table: &'a str,
    separator: char,
    row: &'a str,
}

impl<'a> Key<'a> {
    pub fn new(db: &DbLocation, table: &'a str, row: &'a str) -> Key<'a> {
        Key {
            table,
            separator: db.separator,
            row,
        }
    }
}

impl redis::ToRedisArgs for Key<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut sep = [0; 4];
        let mut w = out.writer_for_next_arg();
        // Writes into a Vec cannot fail.
        let _ = w.write_all(self.table.as_bytes());
        let _ = w.write_all(self.separator.encode_utf8(&mut sep).as_bytes());
        let _ = w.write_all(self.row.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pst::PORT_TABLE;

    #[test]
    fn keys_are_written_as_one_argument() {
        let db = DbLocation {
            name: "STATE_DB".into(),
            socket: "/s".into(),
            id: 6,
            separator: '|',
        };
        let mut cmd = redis::cmd("DEL");
        cmd.arg(Key::new(&db, PORT_TABLE, "Ethernet0"));
        assert_eq!(
            cmd.get_packed_command(),
            b"*2\r\n$3\r\nDEL\r\n$20\r\nPORT_TABLE|Ethernet0\r\n"
        );
    }
}
