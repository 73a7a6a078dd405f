//! The C++ start-up sequence (spec §1.2), in the same order: logger registration, switch
//! type, warm-start check, netlink subscribe-then-dump, CONFIG_DB `PORT|*` copied into APPL_DB
//! `PORT_TABLE` and `PortConfigDone{count}`, pruning, and the stale-netdev step. Redis commands
//! that C++ sends one by one are pipelined here; their order per database is unchanged.

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::logging::LogControl;
use crate::netlink::{self, LinkSocket};
use crate::notify::Notifier;
use crate::port::PortSync;
use crate::pst::strip_special;
use crate::store::{Fvs, Store};
use std::path::Path;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Everything the loop needs once start-up is done.
pub struct Started {
    pub store: Store,
    pub sock: LinkSocket,
    pub sync: PortSync,
    pub warm: bool,
    pub switch_type: String,
    /// CONFIG_DB `mtu` per configured port (for the mtu_mismatch alert).
    pub config_mtu: rustc_hash::FxHashMap<String, u32>,
}

/// Wait for `database_config.json` to exist, then for Redis to accept us (logs at most
/// every 30 s per reason; `STATUS=` and `EXTEND_TIMEOUT_USEC=` meanwhile, see `dbwait`).
pub async fn connect_store(db_config: &Path, timeout: Duration) -> Result<Store> {
    let notifier = Notifier::from_env();
    let dbs = crate::dbwait::db_config(db_config, &notifier).await?;
    Ok(crate::dbwait::connect(&dbs, timeout, &notifier).await)
}

fn redis_err(what: &str) -> impl FnOnce(redis::RedisError) -> Error + '_ {
    move |e| Error::redis(what, e)
}

/// Register `LOGGER|portsyncd` (filling missing fields as swss-common does) and apply its level.
pub async fn register_logger(
    store: &mut Store,
    log: &LogControl,
    settings: &Settings,
) -> Result<()> {
    let key = store.dbs.config.key("LOGGER", "portsyncd");
    let level = store
        .hget(true, &key, "LOGLEVEL")
        .await
        .map_err(redis_err("reading LOGGER"))?;
    let output = store
        .hget(true, &key, "LOGOUTPUT")
        .await
        .map_err(redis_err("reading LOGGER"))?;
    if level.is_none() || output.is_none() {
        let l = level.as_deref().unwrap_or("NOTICE");
        let o = output.as_deref().unwrap_or("SYSLOG");
        store
            .hset(true, &key, &[("LOGLEVEL", l), ("LOGOUTPUT", o)])
            .await
            .map_err(redis_err("writing LOGGER"))?;
    }
    match &settings.log_level {
        Some(l) => log.apply_sonic(l),
        None => log.apply_sonic(level.as_deref().unwrap_or("NOTICE")),
    }
    Ok(())
}

/// spec §4: warm only if enabled system- or swss-wide and a restore_count exists.
async fn check_warm_start(store: &mut Store) -> Result<bool> {
    let enable = |k: &str| store.dbs.state.key("WARM_RESTART_ENABLE_TABLE", k);
    let (sys_key, swss_key) = (enable("system"), enable("swss"));
    let sys = store
        .hget(false, &sys_key, "enable")
        .await
        .map_err(redis_err("reading warm restart"))?;
    let swss = store
        .hget(false, &swss_key, "enable")
        .await
        .map_err(redis_err("reading warm restart"))?;
    let key = store.dbs.state.key("WARM_RESTART_TABLE", "portsyncd");
    let enabled = sys.as_deref() == Some("true") || swss.as_deref() == Some("true");
    let mut count = None;
    if enabled {
        let c = store
            .hget(false, &key, "restore_count")
            .await
            .map_err(redis_err("reading restore_count"))?;
        match c.as_deref().and_then(|c| c.parse::<u64>().ok()) {
            Some(n) => count = Some(n + 1),
            None => warn!(
                target: "checkWarmStart", "portsyncd doing warm start, but restore_count not found in stateDB WARM_RESTART_TABLE table, fall back to cold start"
            ),
        }
    }
    let value = count.unwrap_or(0).to_string();
    store
        .hset(false, &key, &[("restore_count", &value)])
        .await
        .map_err(redis_err("writing restore_count"))?;
    if let Some(n) = count {
        info!(target: "checkWarmStart", "portsyncd doing warm start, restore count {n}");
    }
    Ok(count.is_some())
}

/// Run the start-up sequence against a connected store.
pub async fn start(mut store: Store, log: &LogControl, settings: &Settings) -> Result<Started> {
    register_logger(&mut store, log, settings).await?;
    let meta = store.dbs.config.key("DEVICE_METADATA", "localhost");
    let switch_type = store
        .hget(true, &meta, "switch_type")
        .await
        .map_err(redis_err("reading DEVICE_METADATA"))?
        .unwrap_or_else(|| "switch".into());
    let warm = check_warm_start(&mut store).await?;

    let (mut sock, rcvbuf) = LinkSocket::open(settings.netlink_rcvbuf)
        .map_err(|e| Error::netlink("opening the link socket", e))?;
    sock.request_dump()
        .map_err(|e| Error::netlink("requesting the link dump", e))?;
    debug!("netlink receive buffer {rcvbuf} bytes");
    info!("Listen to link messages...");

    info!(target: "handlePortConfigFromConfigDB", "Getting port configuration from ConfigDB...");
    let ports = store
        .config_ports()
        .await
        .map_err(redis_err("reading CONFIG_DB PORT"))?;
    if ports.is_empty() {
        info!(target: "handlePortConfigFromConfigDB", "ConfigDB does not have port information, however ports can be added later on, continuing...");
    }
    let mut sync = PortSync::new(ports.iter().map(|(name, _)| name.clone()));
    let config_mtu = ports
        .iter()
        .filter_map(|(name, fvs)| {
            let mtu = fvs.iter().find(|(f, _)| f == b"mtu")?;
            Some((
                name.clone(),
                std::str::from_utf8(&mtu.1).ok()?.parse().ok()?,
            ))
        })
        .collect();
    if !warm {
        let mut sets: Vec<(String, Fvs)> = ports
            .into_iter()
            .map(|(name, fvs)| {
                (
                    name,
                    fvs.into_iter()
                        .map(|(f, v)| (strip_special(&f).to_vec(), v))
                        .collect(),
                )
            })
            .collect();
        let count = sets.len().to_string().into_bytes();
        sets.push(("PortConfigDone".into(), vec![(b"count".to_vec(), count)]));
        store
            .producer_sets(&sets)
            .await
            .map_err(redis_err("writing APPL_DB PORT_TABLE"))?;

        let mut awaited: Vec<String> = sync.expected().map(str::to_owned).collect();
        awaited.sort(); // the C++ daemon prunes in sorted order
        let consumed = store
            .consumed_ports(&awaited)
            .await
            .map_err(redis_err("reading APPL_DB PORT_TABLE"))?;
        for (port, yes) in awaited.iter().zip(consumed) {
            if yes {
                sync.prune(port);
            }
        }
        if switch_type != "dpu" {
            bring_down_stale(&mut sync)?;
        }
    }
    info!(
        "portsyncd started: {} configured port(s) awaited, {} start, switch_type {switch_type}",
        sync.expected().count(),
        if warm { "warm" } else { "cold" }
    );
    Ok(Started {
        store,
        sock,
        sync,
        warm,
        switch_type,
        config_mtu,
    })
}

/// Cold start: every `Ethernet*` netdev that exists now is left over from before; bring it
/// admin-down through RTM_SETLINK and ignore its ifindex from now on.
fn bring_down_stale(sync: &mut PortSync) -> Result<()> {
    let links = netlink::list_links().map_err(|e| Error::netlink("listing links", e))?;
    for (ifindex, name) in links {
        if !name.starts_with("Ethernet") {
            continue;
        }
        debug!(target: "LinkSync", "Bring down old interface {name}({ifindex})");
        if let Err(e) = netlink::set_admin_down(ifindex) {
            warn!(target: "LinkSync", "Failed to bring down old interface {name}({ifindex}): {e}");
        }
        sync.add_old_interface(ifindex, name);
    }
    Ok(())
}
