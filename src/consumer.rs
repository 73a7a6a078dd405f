//! orchagent's side of APPL_DB `PORT_TABLE`, for the lab and the tests: the swss-common
//! ConsumerStateTable pop (spec §3.7) as one Lua script of our own — SPOP a batch of pending
//! keys, and for each apply the delete-set, move the temp hash into the table, drop the temp
//! hash. `portsyncd consume` runs it on every PUBLISH, like orchagent.

use crate::config::Settings;
use crate::dbconfig::{DbConfig, DbLocation};
use crate::error::{Error, Result};
use crate::pst::PORT_TABLE;
use crate::store::{self, Fvs};
use std::time::Duration;

/// KEYS = [key set, "<T><sep>", del set]; ARGV = [batch size, temp prefix].
pub const POP_SCRIPT: &str = "\
local keys = redis.call('SPOP', KEYS[1], ARGV[1])
local out = {}
for _, k in ipairs(keys) do
    if redis.call('SREM', KEYS[3], k) == 1 then
        redis.call('DEL', KEYS[2] .. k)
    end
    local temp = ARGV[2] .. KEYS[2] .. k
    local fvs = redis.call('HGETALL', temp)
    for i = 1, #fvs, 2 do
        redis.call('HSET', KEYS[2] .. k, fvs[i], fvs[i + 1])
    end
    redis.call('DEL', temp)
    table.insert(out, {k, fvs})
end
return out
";

/// One pop of up to `batch` pending keys: `(key, fvs)`; empty fvs means a delete.
pub async fn pop<C: redis::aio::ConnectionLike>(
    con: &mut C,
    db: &DbLocation,
    table: &str,
    batch: usize,
) -> redis::RedisResult<Vec<(String, Fvs)>> {
    let rows: Vec<(String, Vec<Vec<u8>>)> = redis::Script::new(POP_SCRIPT)
        .key(format!("{table}_KEY_SET"))
        .key(format!("{table}{}", db.separator))
        .key(format!("{table}_DEL_SET"))
        .arg(batch)
        .arg("_")
        .invoke_async(con)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(k, flat)| {
            let fvs = flat
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (c[0].clone(), c[1].clone()))
                .collect();
            (k, fvs)
        })
        .collect())
}

/// Pop until nothing is pending; returns how many keys moved.
pub async fn drain<C: redis::aio::ConnectionLike>(
    con: &mut C,
    db: &DbLocation,
) -> redis::RedisResult<usize> {
    let mut n = 0;
    loop {
        let got = pop(con, db, PORT_TABLE, 128).await?.len();
        if got == 0 {
            return Ok(n);
        }
        n += got;
    }
}

/// `portsyncd consume`: pop APPL_DB `PORT_TABLE` on every publish (and once a second) forever.
pub fn run(settings: &Settings) -> Result<()> {
    let db = DbConfig::load(&settings.db_config)?.get("APPL_DB")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut sub = store::connect_push(&db, settings.redis_timeout, tx)
            .await
            .map_err(|e| Error::redis("consumer subscribe", e))?;
        sub.subscribe(format!("{PORT_TABLE}_CHANNEL@{}", db.id))
            .await
            .map_err(|e| Error::redis("consumer subscribe", e))?;
        let mut con = store::connect(&db, settings.redis_timeout)
            .await
            .map_err(|e| Error::redis("consumer connect", e))?;
        loop {
            if let Err(e) = drain(&mut con, &db).await {
                eprintln!("consumer: pop failed: {e}");
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
        }
    })
}
