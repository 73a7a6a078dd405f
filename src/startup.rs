//! The C++ start-up sequence (spec §1.2): logger registration, switch type, warm-start check,
//! netlink subscribe-then-dump, then the start mode (`startmode.rs`) decides the rest. Cold:
//! the stale `Ethernet*` netdevs are listed and brought down *first*, then CONFIG_DB
//! `PORT|*` is copied into APPL_DB `PORT_TABLE` with `PortConfigDone{count}`, then pruning.
//! Reattach: nothing is published or brought down; rows of vanished ports are found. The cold
//! steps are public so the loop can run them again when swss restarts. Redis commands that
//! C++ sends one by one are pipelined; their order per database is unchanged.

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::logging::LogControl;
use crate::netlink::{self, LinkSocket};
use crate::notify::Notifier;
use crate::port::{qualifies, PortSync};
use crate::pst::PORT_TABLE;
use crate::startmode::{self, Marker, Mode, WarmCheck};
use crate::store::Store;
use rustc_hash::FxHashSet;
use std::path::Path;
use std::time::Duration;
use tracing::{debug, error, info, warn};

/// Everything the loop needs once start-up is done.
pub struct Started {
    pub store: Store,
    pub sock: LinkSocket,
    pub sync: PortSync,
    pub mode: Mode,
    pub switch_type: String,
    /// CONFIG_DB `mtu` per configured port (for the mtu_mismatch alert).
    pub config_mtu: rustc_hash::FxHashMap<String, u32>,
    /// Reattach: rows of ports whose netdev vanished while no daemon ran, to delete.
    pub gone_rows: Vec<String>,
    /// `PortConfigDone` is known to be in APPL_DB (the swss watch is armed).
    pub config_done_seen: bool,
    /// Links skipped at start-up because they could not be decoded.
    pub undecodable: u64,
    /// CONFIG_DB ports as read at start, with their `mtu` (the live view's first state).
    pub configured: Vec<(String, Option<u32>)>,
    /// APPL_DB's `PortConfigDone count` once start-up is done (what we wrote, on a cold start).
    pub port_count: Option<usize>,
    /// APPL_DB sets that got an error reply; the loop retries them (fault isolation).
    pub failed_sets: crate::store::FailedSets,
    /// The writer lease, taken before anything is written (renewed by the heartbeat).
    pub lease: crate::lease::Lease,
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
async fn check_warm_start(store: &mut Store) -> Result<WarmCheck> {
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
    Ok(match (enabled, count) {
        (false, _) => WarmCheck::Disabled,
        (true, Some(_)) => WarmCheck::Warm,
        (true, None) => WarmCheck::FallBack,
    })
}

/// Run the start-up sequence against a connected store.
pub async fn start(mut store: Store, log: &LogControl, settings: &Settings) -> Result<Started> {
    let lease = crate::lease::Lease::acquire(&mut store, settings.heartbeat).await?;
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

    let marker = appl_marker(&store, "PortConfigDone")
        .await
        .map_err(redis_err("reading APPL_DB PortConfigDone"))?;
    let (mode, reason) = startmode::decide(settings.start_mode, warm, marker);
    info!("start mode {}: {reason}", mode.as_str());

    // A cold start lists and brings down the stale netdevs before anything is published;
    // then CONFIG_DB is read and copied chunk by chunk (`Store::copy_config`).
    let mut undecodable = 0;
    let mut stale = Vec::new();
    if mode == Mode::Cold && switch_type != "dpu" {
        // The stale netdevs are the ones that exist before PortConfigDone is published:
        // syncd creates the new host interfaces once orchagent has it (spec §7, the
        // "stale netdev race"), so list and bring them down first.
        stale = stale_netdevs(&mut undecodable)?;
        bring_down(&stale);
    }
    let copy = copy_config(&mut store, mode == Mode::Cold).await?;
    let config_mtu = copy
        .ports
        .iter()
        .filter_map(|(name, mtu)| Some((name.clone(), (*mtu)?)))
        .collect();
    let mut sync = PortSync::new(copy.ports.iter().map(|(name, _)| name.clone()));
    let mut started = Started {
        store,
        sock,
        sync: PortSync::default(),
        mode,
        switch_type,
        config_mtu,
        gone_rows: Vec::new(),
        config_done_seen: marker.present(),
        undecodable,
        configured: copy.ports,
        port_count: None,
        failed_sets: copy.failed,
        lease,
    };
    match mode {
        Mode::Warm => {}
        Mode::Cold => {
            if started.switch_type != "dpu" {
                sync.replace_old_interfaces(stale);
            }
            started.port_count = Some(started.configured.len());
            started.config_done_seen = true;
            let consumed = consumed(&mut started.store, sync.expected()).await?;
            for port in &consumed {
                sync.prune(port);
            }
        }
        Mode::Reattach => {
            let init = appl_marker(&started.store, "PortInitDone")
                .await
                .map_err(redis_err("reading APPL_DB PortInitDone"))?;
            if init.present() {
                sync = PortSync::new([]);
                sync.mark_init_sent();
            }
            started.gone_rows = gone_rows(&mut started.store, &mut started.undecodable).await?;
        }
    }
    if mode != Mode::Cold && marker.present() {
        started.port_count = port_count(&started.store)
            .await
            .map_err(redis_err("reading APPL_DB PortConfigDone"))?;
    }
    info!(
        "portsyncd started: {} configured port(s) awaited, {} start, switch_type {}",
        sync.expected().count(),
        mode.as_str(),
        started.switch_type
    );
    started.sync = sync;
    Ok(started)
}

/// Where APPL_DB holds the marker `PORT_TABLE:<name>`: consumed, still pending in the
/// ProducerStateTable temp hash, or nowhere.
pub async fn appl_marker(store: &Store, name: &str) -> redis::RedisResult<Marker> {
    let key = store.dbs.appl.key(PORT_TABLE, name);
    let (consumed, pending): (bool, bool) = redis::pipe()
        .cmd("EXISTS")
        .arg(&key)
        .cmd("EXISTS")
        .arg(format!("_{key}"))
        .query_async(&mut store.appl.clone())
        .await?;
    Ok(Marker::from_exists(consumed, pending))
}

/// APPL_DB's `PortConfigDone count`: the consumed row's, else the pending one's.
async fn port_count(store: &Store) -> redis::RedisResult<Option<usize>> {
    let key = store.dbs.appl.key(PORT_TABLE, "PortConfigDone");
    let (consumed, pending): (Option<String>, Option<String>) = redis::pipe()
        .cmd("HGET")
        .arg(&key)
        .arg("count")
        .cmd("HGET")
        .arg(format!("_{key}"))
        .arg("count")
        .query_async(&mut store.appl.clone())
        .await?;
    Ok(consumed.or(pending).and_then(|c| c.parse().ok()))
}

/// CONFIG_DB `PORT|*` with the C++ log lines and, with `publish`, copied into APPL_DB
/// `PORT_TABLE` with `PortConfigDone {count}` last, chunk by chunk (`Store::copy_config`). A key
/// that cannot be read (an error reply, e.g. a string) is logged and skipped: not published,
/// not counted, not awaited.
pub async fn copy_config(store: &mut Store, publish: bool) -> Result<crate::store::ConfigCopy> {
    info!(target: "handlePortConfigFromConfigDB", "Getting port configuration from ConfigDB...");
    let copy = store
        .copy_config(publish)
        .await
        .map_err(redis_err("copying CONFIG_DB PORT to APPL_DB PORT_TABLE"))?;
    for (name, e) in &copy.unreadable {
        error!(target: "handlePortConfigFromConfigDB", "CONFIG_DB {}: {} {}: skipped (not published, not counted in PortConfigDone)", store.dbs.config.key("PORT", name), e.reason, e.detail);
    }
    if copy.ports.is_empty() {
        info!(target: "handlePortConfigFromConfigDB", "ConfigDB does not have port information, however ports can be added later on, continuing...");
    }
    Ok(copy)
}

/// Cold-start pruning: the awaited ports orchagent already consumed (their APPL_DB row has
/// `admin_status`), checked in sorted order like the C++ daemon.
pub async fn consumed<'a>(
    store: &mut Store,
    awaited: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>> {
    let mut awaited: Vec<String> = awaited.map(str::to_owned).collect();
    awaited.sort();
    let yes = store
        .consumed_ports(&awaited)
        .await
        .map_err(redis_err("reading APPL_DB PORT_TABLE"))?;
    Ok(awaited
        .into_iter()
        .zip(yes)
        .filter_map(|(p, y)| y.then_some(p))
        .collect())
}

/// The `Ethernet*` netdevs that exist now, in kernel order (what `if_nameindex` lists).
/// Links that cannot be decoded are logged, counted into `undecodable` and skipped.
pub fn stale_netdevs(undecodable: &mut u64) -> Result<Vec<(u32, String)>> {
    let list = netlink::dump_links().map_err(|e| Error::netlink("listing links", e))?;
    skip_undecodable(&list.undecodable, undecodable);
    Ok(list
        .links
        .into_iter()
        .filter(|l| l.name.starts_with("Ethernet"))
        .map(|l| (l.ifindex, l.name))
        .collect())
}

fn skip_undecodable(found: &[String], count: &mut u64) {
    for why in found {
        warn!("skipping an undecodable link: {why}");
    }
    *count += found.len() as u64;
}

/// Bring each stale netdev admin-down through RTM_SETLINK (never a shell).
pub fn bring_down(stale: &[(u32, String)]) {
    for (ifindex, name) in stale {
        debug!(target: "LinkSync", "Bring down old interface {name}({ifindex})");
        if let Err(e) = netlink::set_admin_down(*ifindex) {
            warn!(target: "LinkSync", "Failed to bring down old interface {name}({ifindex}): {e}");
        }
    }
}

/// Reattach: STATE_DB `PORT_TABLE|<name>` rows that portsyncd wrote (they have `state`) for
/// names we handle whose netdev no longer exists — a DELLINK this daemon missed while it was
/// down. Rows without `state` are orchagent's (it creates some before the netdev exists).
async fn gone_rows(store: &mut Store, undecodable: &mut u64) -> Result<Vec<String>> {
    let rerr = redis_err("reading STATE_DB PORT_TABLE");
    let prefix = store.dbs.state.key(PORT_TABLE, "");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut store.state)
        .await
        .map_err(rerr)?;
    let list = netlink::dump_links().map_err(|e| Error::netlink("listing links", e))?;
    skip_undecodable(&list.undecodable, undecodable);
    let kernel: FxHashSet<String> = list.links.into_iter().map(|l| l.name).collect();
    let names: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix(prefix.as_str()))
        .filter(|n| qualifies(n) && !kernel.contains(*n))
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for n in &names {
        pipe.cmd("HEXISTS")
            .arg(store.dbs.state.key(PORT_TABLE, n))
            .arg("state");
    }
    let ours: Vec<bool> = pipe
        .query_async(&mut store.state)
        .await
        .map_err(redis_err("reading STATE_DB PORT_TABLE"))?;
    Ok(names
        .into_iter()
        .zip(ours)
        .filter(|&(_, ours)| ours)
        .map(|(n, _)| n.to_owned())
        .collect())
}
