//! SONiC's tables over Redis: one reconnecting connection per database (APPL, CONFIG, STATE),
//! the ProducerStateTable script (loaded once, EVALSHA, reloaded on NOSCRIPT), and the flush
//! that turns one loop turn's `Batch` into two pipelines: the APPL_DB gate checks, then the
//! STATE_DB writes (plus `PortInitDone` when due). Errors are returned to the loop, which keeps
//! the batch and retries; nothing here gives up on a write.

use crate::batch::{plan, Batch, StateWrite};
use crate::dbconfig::{DbLocation, SonicDbs};
use crate::pst::{self, PORT_TABLE};
use crate::requests::{two_in_flight, Key, STREAM_CHUNK};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisResult};
use std::time::Duration;

/// STATE_DB table of the daemon's own heartbeat, read by `portsyncd health`.
pub const HEALTH_TABLE: &str = "PORTSYNCD_HEALTH_TABLE";

/// Field/value pairs as Redis returned them (binary-safe).
pub type Fvs = Vec<(Vec<u8>, Vec<u8>)>;

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

#[derive(Clone)]
pub struct Store {
    pub dbs: SonicDbs,
    pub appl: ConnectionManager,
    pub config: ConnectionManager,
    pub state: ConnectionManager,
    set_sha: String,
    gate_sha: String,
}

impl Store {
    pub async fn connect(dbs: SonicDbs, timeout: Duration) -> RedisResult<Store> {
        let appl = connect(&dbs.appl, timeout).await?;
        let config = connect(&dbs.config, timeout).await?;
        let state = connect(&dbs.state, timeout).await?;
        Ok(Store {
            dbs,
            appl,
            config,
            state,
            set_sha: String::new(),
            gate_sha: String::new(),
        })
    }

    pub async fn load_scripts(&mut self) -> RedisResult<()> {
        self.set_sha = pst::load_cmd().query_async(&mut self.appl).await?;
        self.gate_sha = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(GATE_SCRIPT)
            .query_async(&mut self.appl)
            .await?;
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

    /// CONFIG_DB `PORT|*`: names in KEYS order, each with its fields in HGETALL order.
    pub async fn config_ports(&mut self) -> RedisResult<Vec<(String, Fvs)>> {
        let prefix = self.dbs.config.key("PORT", "");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut self.config)
            .await?;
        let all: Vec<Fvs> = two_in_flight(&self.config, keys.chunks(STREAM_CHUNK), |chunk| {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("HGETALL").arg(k);
            }
            pipe
        })
        .await?;
        Ok(keys
            .into_iter()
            .zip(all)
            .map(|(k, fvs)| (k[prefix.len()..].to_owned(), fvs))
            .collect())
    }

    /// ProducerStateTable sets into APPL_DB `PORT_TABLE`, in order, as one pipeline.
    pub async fn producer_sets(&mut self, sets: &[(String, Fvs)]) -> RedisResult<()> {
        if sets.is_empty() {
            return Ok(());
        }
        let result = self.producer_pipe(sets).await;
        match result {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.load_scripts().await?;
                self.producer_pipe(sets).await
            }
            other => other,
        }
    }

    async fn producer_pipe(&mut self, sets: &[(String, Fvs)]) -> RedisResult<()> {
        let (sha, db) = (&self.set_sha, &self.dbs.appl);
        let _: Vec<redis::Value> = two_in_flight(&self.appl, sets.chunks(STREAM_CHUNK), |chunk| {
            let mut pipe = redis::Pipeline::with_capacity(chunk.len());
            for (key, fvs) in chunk {
                pipe.add_command(pst::set_cmd(sha, db, PORT_TABLE, key, fvs));
            }
            pipe
        })
        .await?;
        Ok(())
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

    /// Send one batch: gate-check the ports it sets (APPL_DB `EXISTS PORT_TABLE:<p>` in one
    /// script call, at flush time, never cached), then its STATE_DB writes, then `PortInitDone` if `init`.
    /// Returns, per batch entry in order, whether its set passed the gate and was written.
    pub async fn flush(
        &mut self,
        batch: &Batch,
        init: bool,
        rows: &[crate::outbox::Row],
    ) -> RedisResult<Vec<bool>> {
        let mut exists: Vec<bool> = Vec::new();
        let gated = batch.gated().count();
        if gated > 0 {
            let found = match self.gate(batch, gated).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    self.load_scripts().await?;
                    self.gate(batch, gated).await?
                }
                other => other?,
            };
            if found.len() != gated {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "gate script",
                    format!("{} answers for {gated} ports", found.len()),
                )));
            }
            exists = found.iter().map(|&b| b == b'1').collect();
        }
        // `plan` asks about each entry with a set exactly once, in batch order: the gated order.
        let mut gate = exists.iter().copied();
        let written: Vec<bool> = batch
            .iter()
            .map(|(_, op)| op.set.is_some() && gate.next().unwrap_or(false))
            .collect();
        let mut gate = exists.iter().copied();
        let writes = plan(batch, |_| gate.next().unwrap_or(false));
        if !writes.is_empty() || !rows.is_empty() {
            state_pipeline(&self.dbs.state, &writes, rows)
                .query_async::<()>(&mut self.state)
                .await?;
        }
        if init {
            let fvs = vec![(b"lanes".to_vec(), b"0".to_vec())];
            self.producer_sets(&[("PortInitDone".to_owned(), fvs)])
                .await?;
        }
        Ok(written)
    }
}

/// The APPL_DB gate for a whole flush in one command: `EXISTS` on each `PORT_TABLE:<p>` key,
/// answered as one string of `0`/`1`, one character per key. Against a pipeline of `EXISTS`
/// commands this saves the daemon a command to encode and a reply to parse per port, and
/// Redis a command to read; the checks are the same reads at the same moment.
pub const GATE_SCRIPT: &str = "\
local found = {}
for i, key in ipairs(KEYS) do
    found[i] = redis.call('EXISTS', key) == 1 and '1' or '0'
end
return table.concat(found)
";

impl Store {
    /// `EVALSHA <gate> n PORT_TABLE:<p>…` for the ports of `batch` whose op sets the row.
    async fn gate(&mut self, batch: &Batch, gated: usize) -> RedisResult<Vec<u8>> {
        let mut cmd = redis::Cmd::with_capacity(gated + 3, 64 + 32 * gated);
        cmd.arg("EVALSHA").arg(&self.gate_sha).arg(gated);
        for p in batch.gated() {
            cmd.arg(Key::new(&self.dbs.appl, PORT_TABLE, p));
        }
        cmd.query_async(&mut self.appl).await
    }
}

/// The STATE_DB pipeline of a flush: our alert rows (`DEL` for a row with no fields), then per port a `DEL` and/or the one
/// 4-field `HSET PORT_TABLE|<p> state ok netdev_oper_status … admin_status … mtu …` in the C++
/// field order. Pure, so the benches measure the same encoding.
pub fn state_pipeline(
    state: &DbLocation,
    writes: &[StateWrite<'_>],
    rows: &[crate::outbox::Row],
) -> redis::Pipeline {
    // Replies are read and dropped (`query_async::<()>`) rather than marked `ignore()`, which
    // costs a hash-set insert per command.
    let mut pipe = redis::Pipeline::with_capacity(rows.len() + writes.len());
    for (key, fields) in rows {
        // A row with no fields is an expired alert row: delete it.
        if fields.is_empty() {
            pipe.add_command(redis::cmd("DEL").arg(key).to_owned());
            continue;
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in fields {
            cmd.arg(*f).arg(v);
        }
        pipe.add_command(cmd);
    }
    for w in writes {
        match *w {
            StateWrite::Del(p) => {
                let mut cmd = redis::Cmd::with_capacity(2, 48);
                cmd.arg("DEL").arg(Key::new(state, PORT_TABLE, p));
                pipe.add_command(cmd);
            }
            StateWrite::Set(p, s) => {
                let mut cmd = redis::Cmd::with_capacity(10, 128);
                cmd.arg("HSET")
                    .arg(Key::new(state, PORT_TABLE, p))
                    .arg("state")
                    .arg("ok")
                    .arg("netdev_oper_status")
                    .arg(s.oper_str())
                    .arg("admin_status")
                    .arg(s.admin_str())
                    .arg("mtu")
                    .arg(s.mtu);
                pipe.add_command(cmd);
            }
        }
    }
    pipe
}
