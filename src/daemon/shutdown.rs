//! Shutdown, an input of the loop like any other: read what the kernel already queued, stop
//! reading, flush what is pending within `shutdown_flush_ms`, write the `stopped` heartbeat
//! row (if the writer lease is still ours), and report (exit 75) writes that could not be
//! flushed (keys still answered with error replies included: they are retried on their own
//! backoff until the deadline). After losing the lease (exit 73) nothing more is written.

use super::{Inflight, Loop};
use crate::error::{Error, Result};
use crate::lease::Renewal;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

impl Loop {
    /// Stop reading netlink; flush what is pending within the configured time. `lost` names
    /// the instance that took the lease: the tables are its to write now, so pending writes
    /// are dropped.
    pub(super) async fn shutdown(
        mut self,
        mut inflight: Option<Inflight>,
        lost: Option<String>,
    ) -> Result<()> {
        self.notifier.stopping();
        if let Some(holder) = lost {
            drop(inflight);
            info!(
                "counters at exit: {:?}; {} pending write(s) dropped",
                self.counters,
                self.outbox.pending_len()
            );
            return Err(Error::Lease { holder });
        }
        // Link changes already queued on the socket happened before the signal: take them
        // too (bounded), so a stop right after a burst loses none of it.
        let mut inputs = Vec::new();
        let read = self.sock.read_queued(65_536, &mut inputs);
        if read > 0 {
            info!("shutdown: {read} queued netlink datagram(s) read");
            self.on_inputs(&mut inputs);
        }
        let limit = self.settings.shutdown_flush;
        let deadline = Instant::now() + limit;
        let mut last_err = String::from("timed out");
        loop {
            if inflight.is_none() {
                inflight = self.launch();
            }
            let Some(f) = inflight.take() else {
                // Keys parked after an error reply get their retries until the deadline.
                match self.outbox.next_due() {
                    Some(ms) => {
                        let due = self.started + Duration::from_millis(ms);
                        if due <= Instant::now() || Instant::now() >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.min(deadline)).await;
                        continue;
                    }
                    None => break,
                }
            };
            match tokio::time::timeout_at(deadline, f).await {
                Ok(done) => {
                    if let (_, _, Err(e)) = &done {
                        last_err = e.to_string();
                    }
                    let failed = done.2.is_err();
                    self.on_flushed(done);
                    if failed {
                        let wait = self
                            .retry_at
                            .take()
                            .map(|t| t.min(deadline))
                            .unwrap_or(deadline);
                        tokio::time::sleep_until(wait).await;
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                }
                Err(_) => {
                    // The timed-out flush's batch went with its future: count it as unsent.
                    info!("counters at exit: {:?}", self.counters);
                    return Err(Error::Flush {
                        pending: self.outbox.pending_len() + 1,
                        secs: limit.as_secs_f64(),
                        reason: last_err,
                    });
                }
            }
        }
        info!("counters at exit: {:?}", self.counters);
        let fields = self.health_fields("stopped");
        let fv: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (*f, v.as_str())).collect();
        let lease = self.lease.clone();
        if let Ok(Ok(Renewal::Lost(holder))) = tokio::time::timeout(
            Duration::from_millis(500),
            lease.renew(&mut self.store, &fv),
        )
        .await
        {
            warn!("not marking the lease stopped: it is held by {holder}");
        }
        if self.outbox.idle() {
            Ok(())
        } else {
            if self.outbox.failing() > 0 {
                last_err = format!(
                    "{} key(s) still answered with error replies",
                    self.outbox.failing()
                );
            }
            Err(Error::Flush {
                pending: (self.outbox.pending_len() + self.outbox.failing()).max(1),
                secs: limit.as_secs_f64(),
                reason: last_err,
            })
        }
    }
}
