//! SONiC's tables over Redis: one reconnecting connection per database (APPL, CONFIG, STATE),
//! the ProducerStateTable script (loaded once, EVALSHA, reloaded on NOSCRIPT), and start-up's
//! reads and sets (the flush itself is in `flush.rs`). Pipelines run with
//! redis-rs's `ignore_errors()`, so an error reply answers only its own command (a
//! `Value::ServerError` in the reply array) and is reported per key; a connection-level error
//! fails the whole request and is returned to the loop, which keeps the batch and retries.
//! Nothing here gives up on a write.

use crate::dbconfig::{DbLocation, SonicDbs};
use crate::keyretry::KeyError;
use crate::pst::{self, PORT_TABLE};
use crate::requests::{two_in_flight, STREAM_CHUNK};
pub use copy::ConfigCopy;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisResult, Value,
};
use replies::hgetall_pipe;
pub use replies::{HashReply, MtuReply};
use std::time::Duration;

mod copy;
mod replies;

/// STATE_DB table of the daemon's own heartbeat, read by `portsyncd health`.
pub const HEALTH_TABLE: &str = "PORTSYNCD_HEALTH_TABLE";

/// Field/value pairs as Redis returned them (binary-safe).
pub type Fvs = Vec<(Vec<u8>, Vec<u8>)>;

/// An error reply, as the reason (its first word) and the rest.
pub fn key_error(e: &redis::ServerError) -> KeyError {
    KeyError {
        reason: e.code().to_owned(),
        detail: e.details().unwrap_or("").to_owned(),
    }
}

/// Start-up sets that got an error reply, with the reply (the loop retries them).
pub type FailedSets = Vec<(String, Fvs, KeyError)>;

fn conn_info(db: &DbLocation, resp3: bool) -> ConnectionInfo {
    let mut redis = RedisConnectionInfo::default()
        .set_db(db.id)
        .set_skip_set_lib_name();
    if resp3 {
        redis = redis.set_protocol(redis::ProtocolVersion::RESP3);
    }
    ConnectionAddr::Unix(db.socket.clone())
        .into_connection_info()
        .expect("a unix address is always valid")
        .set_redis_settings(redis)
}

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_secs(1))
}

/// Open a reconnecting connection to one database (SELECTs its id on every connect).
pub async fn connect(db: &DbLocation, timeout: Duration) -> RedisResult<ConnectionManager> {
    let client = redis::Client::open(conn_info(db, false))?;
    ConnectionManager::new_with_config(client, manager_config(timeout)).await
}

/// A RESP3 connection whose pushes (keyspace notifications) go to `tx`, resubscribed after
/// reconnects.
pub async fn connect_push(
    db: &DbLocation,
    timeout: Duration,
    tx: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
) -> RedisResult<ConnectionManager> {
    let client = redis::Client::open(conn_info(db, true))?;
    let cfg = manager_config(timeout)
        .set_push_sender(tx)
        .set_automatic_resubscription();
    ConnectionManager::new_with_config(client, cfg).await
}

/// `PSUBSCRIBE pattern` on a push connection of its own (resubscribed after reconnects); the
/// notifications go to `tx`. The connection must be kept for as long as they are wanted.
pub async fn psubscribe(
    db: &DbLocation,
    pattern: &str,
    timeout: Duration,
    tx: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
) -> RedisResult<ConnectionManager> {
    let (inner, mut pushes) = tokio::sync::mpsc::unbounded_channel();
    let mut con = connect_push(db, timeout, inner).await?;
    con.psubscribe(pattern).await?;
    // The manager tries to reconnect once when the connection drops, then only when a command
    // is sent, and a subscription sends none: after a Redis restart longer than that one try,
    // the subscription stayed gone (found by scripts/soak). So the pushes are forwarded, and
    // after a disconnection PINGs go out until the connection, resubscribed, is back.
    let mut keeper = con.clone();
    tokio::spawn(async move {
        while let Some(push) = pushes.recv().await {
            let lost = push.kind == redis::PushKind::Disconnection;
            if tx.send(push).is_err() {
                return;
            }
            while lost
                && redis::cmd("PING")
                    .query_async::<()>(&mut keeper)
                    .await
                    .is_err()
            {
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    Ok(con)
}

#[derive(Clone)]
pub struct Store {
    pub dbs: SonicDbs,
    pub appl: ConnectionManager,
    pub config: ConnectionManager,
    pub state: ConnectionManager,
    pub(crate) set_sha: String,
    pub(crate) gate_sha: String,
    pub(crate) flush_sha: String,
}

impl Store {
    pub async fn connect(dbs: SonicDbs, timeout: Duration) -> RedisResult<Store> {
        // The three connects (each a connect and a SELECT round trip) overlap.
        let (appl, config, state) = tokio::try_join!(
            connect(&dbs.appl, timeout),
            connect(&dbs.config, timeout),
            connect(&dbs.state, timeout)
        )?;
        Ok(Store {
            dbs,
            appl,
            config,
            state,
            set_sha: String::new(),
            gate_sha: String::new(),
            flush_sha: String::new(),
        })
    }

    /// Load the ProducerStateTable script and the flush's: the gate script, and the one-call
    /// flush script when APPL_DB and STATE_DB share an instance.
    pub async fn load_scripts(&mut self) -> RedisResult<()> {
        // One round trip for both, and the lease's script loaded on STATE_DB's instance at the
        // same time, so its first EVALSHA (`lease.rs`, through redis-rs's `Script`) is not
        // answered NOSCRIPT and sent again.
        let one_instance = self.dbs.appl.socket == self.dbs.state.socket;
        let mut pipe = redis::pipe();
        pipe.add_command(pst::load_cmd());
        pipe.cmd("SCRIPT").arg("LOAD").arg(GATE_SCRIPT);
        if one_instance {
            let script = crate::flushscript::flush_script(&self.dbs.appl, &self.dbs.state);
            pipe.cmd("SCRIPT").arg("LOAD").arg(script);
        }
        let mut lease = redis::cmd("SCRIPT");
        lease.arg("LOAD").arg(crate::lease::SCRIPT);
        let mut state = self.state.clone();
        let (shas, _): (Vec<String>, String) = tokio::try_join!(
            pipe.query_async(&mut self.appl),
            lease.query_async(&mut state)
        )?;
        let mut shas = shas.into_iter();
        let mut next = || {
            shas.next().ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "SCRIPT LOAD",
                    "fewer answers than scripts".to_owned(),
                ))
            })
        };
        self.set_sha = next()?;
        self.gate_sha = next()?;
        if one_instance {
            self.flush_sha = next()?;
        }
        Ok(())
    }

    /// `HGET` on CONFIG_DB (`config == true`) or STATE_DB.
    pub async fn hget(
        &mut self,
        config: bool,
        key: &str,
        field: &str,
    ) -> RedisResult<Option<String>> {
        let con = if config {
            &mut self.config
        } else {
            &mut self.state
        };
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(con)
            .await
    }

    /// Multi-field `HSET` on CONFIG_DB or STATE_DB.
    pub async fn hset(&mut self, config: bool, key: &str, fvs: &[(&str, &str)]) -> RedisResult<()> {
        let con = if config {
            &mut self.config
        } else {
            &mut self.state
        };
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in fvs {
            cmd.arg(*f).arg(*v);
        }
        cmd.query_async::<i64>(con).await.map(drop)
    }

    /// CONFIG_DB `PORT|*` as name → `mtu`, what the periodic re-read keeps (readable keys
    /// only, in KEYS order). Each chunk's replies are reduced as they arrive, so memory holds
    /// two chunks of replies rather than every port's fields at once: at 10,000 ports those
    /// were about 8 MB, and the re-read every 30 s set the process's high-water mark.
    pub async fn config_mtus(&mut self) -> RedisResult<Vec<(String, Option<u32>)>> {
        let prefix = self.dbs.config.key("PORT", "");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut self.config)
            .await?;
        let mtus: Vec<MtuReply> =
            two_in_flight(&self.config, keys.chunks(STREAM_CHUNK), hgetall_pipe).await?;
        Ok(keys
            .into_iter()
            .zip(mtus)
            .filter_map(|(k, m)| Some((k[prefix.len()..].to_owned(), m.0?)))
            .collect())
    }

    /// ProducerStateTable sets into APPL_DB `PORT_TABLE`, in order, as one pipeline. Returns
    /// the sets that got an error reply (index into `sets`, reply), in order; the others
    /// landed. Sets answered NOSCRIPT are sent again once the script is reloaded.
    pub async fn producer_sets(
        &mut self,
        sets: &[(String, Fvs)],
    ) -> RedisResult<Vec<(usize, KeyError)>> {
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let mut replies = self.producer_pipe(sets).await?;
        let noscript = |v: &Value| matches!(v, Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript));
        if replies.iter().any(noscript) {
            self.load_scripts().await?;
            let again: Vec<usize> = (0..replies.len())
                .filter(|&i| noscript(&replies[i]))
                .collect();
            let resend: Vec<(String, Fvs)> = again.iter().map(|&i| sets[i].clone()).collect();
            for (i, v) in again.into_iter().zip(self.producer_pipe(&resend).await?) {
                replies[i] = v;
            }
        }
        Ok(replies
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Value::ServerError(e) => Some((i, key_error(e))),
                _ => None,
            })
            .collect())
    }

    async fn producer_pipe(&mut self, sets: &[(String, Fvs)]) -> RedisResult<Vec<Value>> {
        let (sha, db) = (&self.set_sha, &self.dbs.appl);
        two_in_flight(&self.appl, sets.chunks(STREAM_CHUNK), |chunk| {
            let mut pipe = redis::Pipeline::with_capacity(chunk.len());
            pipe.ignore_errors();
            for (key, fvs) in chunk {
                pipe.add_command(pst::set_cmd(sha, db, PORT_TABLE, key, fvs));
            }
            pipe
        })
        .await
    }

    /// Which of `ports` have an APPL_DB `PORT_TABLE` row with `admin_status` (cold-start pruning).
    pub async fn consumed_ports(&mut self, ports: &[String]) -> RedisResult<Vec<bool>> {
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for p in ports {
            pipe.cmd("HEXISTS")
                .arg(self.dbs.appl.key(PORT_TABLE, p))
                .arg("admin_status");
        }
        pipe.query_async(&mut self.appl).await
    }
}

pub use crate::flush::{state_pipeline, GATE_SCRIPT};
