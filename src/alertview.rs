//! `portsyncd alerts`: the alerts the daemon recorded in STATE_DB
//! (`PORTSYNCD_ALERT_TABLE|<rule>|<port>`), firing ones by default, as a table or JSON.

use crate::config::Settings;
use crate::dbconfig::DbConfig;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// The table the daemon writes alert rows to.
pub const ALERT_TABLE: &str = "PORTSYNCD_ALERT_TABLE";

pub fn run(settings: &Settings, all: bool, json: bool) -> Result<()> {
    let db = DbConfig::load(&settings.db_config)?.get("STATE_DB")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    let rows: Vec<BTreeMap<String, String>> = rt.block_on(async {
        let mut con = crate::store::connect(&db, settings.redis_timeout)
            .await
            .map_err(|e| Error::redis("connecting", e))?;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(db.key(ALERT_TABLE, "*"))
            .query_async(&mut con)
            .await
            .map_err(|e| Error::redis("listing alerts", e))?;
        keys.sort();
        let mut rows = Vec::new();
        let prefix = db.key(ALERT_TABLE, "");
        for k in keys {
            let mut row: BTreeMap<String, String> = redis::cmd("HGETALL")
                .arg(&k)
                .query_async(&mut con)
                .await
                .map_err(|e| Error::redis("reading an alert", e))?;
            let rest = k.strip_prefix(&prefix).unwrap_or(&k);
            let (rule, port) = rest.rsplit_once(db.separator).unwrap_or((rest, "-"));
            row.insert("rule".into(), rule.to_owned());
            row.insert("port".into(), port.to_owned());
            if all || row.get("state").map(String::as_str) == Some("firing") {
                rows.push(row);
            }
        }
        Ok::<_, Error>(rows)
    })?;
    if json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
        return Ok(());
    }
    if rows.is_empty() {
        println!("no {}alerts", if all { "" } else { "firing " });
        return Ok(());
    }
    println!(
        "{:<16} {:<14} {:<9} {:<9} message",
        "rule", "port", "severity", "state"
    );
    for r in &rows {
        let g = |f: &str| r.get(f).map(String::as_str).unwrap_or("-");
        println!(
            "{:<16} {:<14} {:<9} {:<9} {}",
            g("rule"),
            g("port"),
            g("severity"),
            g("state"),
            g("message")
        );
    }
    Ok(())
}
