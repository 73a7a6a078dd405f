//! The event loop: one `select!` over the netlink socket, the in-flight Redis flush, the retry
//! timer, the log-level subscription and signals. Each turn reads a bounded number of
//! datagrams, runs every message through the port state machine into one `Batch`, and — when
//! no flush is in flight — sends the batch as pipelines. Redis errors never leave the loop:
//! the batch goes back under newer events and is retried with capped, jittered backoff, then a
//! fresh dump reconciles anything Redis may have lost. Shutdown is an input like any other.

use crate::batch::Batch;
use crate::config::Settings;
use crate::counters::Counters;
use crate::dbconfig::DbConfig;
use crate::error::{Error, Result};
use crate::event::{LinkOp, NetlinkInput};
use crate::logging::LogControl;
use crate::netlink::LinkSocket;
use crate::port::{PortSync, Verdict};
use crate::resync::{Resync, Step};
use crate::startup::{self, Started};
use crate::store::{self, Store};
use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

type FlushResult = (Batch, bool, redis::RedisResult<HashSet<String>>);
type Inflight = Pin<Box<dyn Future<Output = FlushResult>>>;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Build the runtime and run the daemon until SIGTERM/SIGINT.
pub fn run(settings: Settings, config_file: Option<PathBuf>) -> Result<()> {
    let log = LogControl::init(tracing::level_filters::LevelFilter::INFO);
    let dbs = DbConfig::load(&settings.db_config)?.sonic_dbs()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    rt.block_on(async move {
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT handler", e))?;
        let started = tokio::select! {
            s = async {
                let store = startup::connect_store(&dbs, settings.redis_timeout).await;
                startup::start(store, &log, &settings).await
            } => s?,
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        };
        let mut lp = Loop::new(started, settings, config_file, log);
        lp.run(&mut term, &mut int).await
    })
}

struct Loop {
    store: Store,
    sock: LinkSocket,
    sync: PortSync,
    resync: Resync,
    /// Whether the current resync should count (false for the start-up dump).
    resync_counts: bool,
    pending: Batch,
    pending_init: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
    reconcile: bool,
    counters: Counters,
    settings: Settings,
    config_file: Option<PathBuf>,
    log: LogControl,
}

impl Loop {
    fn new(s: Started, settings: Settings, config_file: Option<PathBuf>, log: LogControl) -> Loop {
        let mut resync = Resync::default();
        // The start-up dump is already on its way: track it like a resync so losses during it
        // are caught, but do not count it.
        resync.request(s.sock.drops().unwrap_or(0));
        Loop {
            store: s.store,
            sock: s.sock,
            sync: s.sync,
            resync,
            resync_counts: false,
            pending: Batch::default(),
            pending_init: false,
            retry_at: None,
            backoff: BACKOFF_MIN,
            reconcile: false,
            counters: Counters::default(),
            settings,
            config_file,
            log,
        }
    }

    async fn run(
        &mut self,
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
    ) -> Result<()> {
        let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::io("SIGHUP handler", e))?;
        let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel();
        let _logger_sub = self.subscribe_logger(log_tx).await;
        let mut inflight: Option<Inflight> = None;
        let mut inputs = Vec::new();
        loop {
            if inflight.is_none() && self.retry_at.is_none() {
                inflight = self.launch_flush();
            }
            let retry_at = self.retry_at;
            tokio::select! {
                biased;
                _ = term.recv() => { info!("SIGTERM received, shutting down"); break; }
                _ = int.recv() => { info!("SIGINT received, shutting down"); break; }
                _ = hup.recv() => self.reload(),
                Some(push) = log_rx.recv() => self.on_logger_change(push).await,
                done = async { inflight.as_mut().expect("guarded").await }, if inflight.is_some() => {
                    inflight = None;
                    self.on_flushed(done);
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    self.retry_at = None;
                }
                r = self.sock.read_batch(self.settings.max_datagrams_per_turn, &mut inputs) => {
                    match r {
                        Ok(_) => self.on_inputs(&mut inputs),
                        Err(e) => {
                            error!("netlink reports an error={} on reading a netlink socket", e.raw_os_error().unwrap_or(0));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }
        }
        self.shutdown(inflight).await
    }

    /// Keyspace notifications for CONFIG_DB `LOGGER|portsyncd` (what swssloglevel writes).
    async fn subscribe_logger(
        &mut self,
        tx: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Option<redis::aio::ConnectionManager> {
        let db = self.store.dbs.config.clone();
        let mut con = match store::connect_push(&db, self.settings.redis_timeout, tx).await {
            Ok(c) => c,
            Err(e) => {
                warn!("live log level changes disabled: {e}");
                return None;
            }
        };
        let pattern = format!("__keyspace@{}__:{}", db.id, db.key("LOGGER", "portsyncd"));
        if let Err(e) = con.psubscribe(&pattern).await {
            warn!("live log level changes disabled: {e}");
            return None;
        }
        Some(con)
    }

    async fn on_logger_change(&mut self, push: redis::PushInfo) {
        if !matches!(push.kind, redis::PushKind::PMessage) || self.settings.log_level.is_some() {
            return;
        }
        let key = self.store.dbs.config.key("LOGGER", "portsyncd");
        match self.store.hget(true, &key, "LOGLEVEL").await {
            Ok(Some(level)) => self.log.apply_sonic(&level),
            Ok(None) => {}
            Err(e) => warn!("reading LOGGER|portsyncd: {e}"),
        }
    }

    /// SIGHUP: re-read the settings file; a bad file is rejected and the old settings stay.
    fn reload(&mut self) {
        let Some(file) = self.config_file.clone() else {
            info!("SIGHUP: no --config file, nothing to reload");
            return;
        };
        match Settings::load(Some(&file), Some(&self.settings.db_config)) {
            Ok(new) => {
                if let Some(l) = &new.log_level {
                    self.log.apply_sonic(l);
                }
                self.settings.log_level = new.log_level;
                self.settings.max_datagrams_per_turn = new.max_datagrams_per_turn;
                self.settings.shutdown_flush = new.shutdown_flush;
                info!("SIGHUP: reloaded {}", file.display());
            }
            Err(e) => error!("SIGHUP: keeping the running settings: {e}"),
        }
    }

    fn on_inputs(&mut self, inputs: &mut Vec<NetlinkInput>) {
        for input in inputs.drain(..) {
            match input {
                NetlinkInput::Link { ev, dumped } => {
                    self.counters.link_messages += 1;
                    if ev.op == LinkOp::New {
                        self.resync.on_newlink(ev.ifindex);
                        if dumped && self.resync_counts && self.sync.differs(&ev) {
                            self.counters.resync_corrected += 1;
                        }
                    }
                    self.on_link(&ev);
                }
                NetlinkInput::DumpDone { interrupted } => self.on_dump_done(interrupted),
                NetlinkInput::Overrun => {
                    self.counters.overruns += 1;
                    error!("netlink reports out of memory on reading a netlink socket. High possibility of a lost message");
                    self.start_resync();
                }
                NetlinkInput::Malformed(m) => {
                    self.counters.malformed += 1;
                    warn!("undecodable netlink message: {m}");
                }
            }
        }
        self.check_init();
    }

    fn on_link(&mut self, ev: &crate::event::LinkEvent) {
        let verdict = self.sync.on_link(ev, &mut self.pending);
        if verdict == Verdict::Filtered {
            self.counters.ignored_name += 1;
            return;
        }
        let kind = ev
            .kind
            .as_deref()
            .map(|k| format!(" type:{k}"))
            .unwrap_or_default();
        info!(
            "nlmsg type:{} key:{} admin:{} oper:{} addr:{} ifindex:{} master:{}{kind} flags:{}",
            ev.op.number(),
            ev.name,
            u8::from(ev.admin_up()),
            u8::from(ev.oper_up()),
            ev.mac,
            ev.ifindex,
            ev.master,
            ev.flags
        );
        match verdict {
            Verdict::Filtered => {}
            Verdict::Team => self.counters.ignored_team += 1,
            Verdict::DelWithMaster => self.counters.ignored_master_del += 1,
            Verdict::OldInterface => {
                self.counters.ignored_old += 1;
                debug!(
                    "nlmsg type:{} Ignoring message for old interface {}({})",
                    ev.op.number(),
                    ev.name,
                    ev.ifindex
                );
            }
            Verdict::Accepted { renamed_from } => {
                self.counters.accepted += 1;
                if let Some(old) = renamed_from {
                    info!(
                        "{old} renamed to {} (ifindex {}), removing its state db row",
                        ev.name, ev.ifindex
                    );
                }
            }
        }
    }

    fn start_resync(&mut self) {
        let drops = self.sock.drops().unwrap_or(0);
        if self.resync.request(drops) {
            self.resync_counts = true;
            if let Err(e) = self.sock.request_dump() {
                error!("resync: requesting the link dump failed: {e}");
            }
        }
    }

    fn on_dump_done(&mut self, interrupted: bool) {
        let drops = self.sock.drops().unwrap_or(0);
        let known: Vec<u32> = self.sync.known().keys().copied().collect();
        match self.resync.on_done(drops, interrupted, known.into_iter()) {
            Step::Idle => {}
            Step::DumpAgain => {
                self.counters.redumps += 1;
                warn!("resync: messages were lost during the link dump, dumping again");
                if let Err(e) = self.sock.request_dump() {
                    error!("resync: requesting the link dump failed: {e}");
                }
            }
            Step::Finished { vanished } => {
                for ifindex in &vanished {
                    if let Some(name) = self.sync.vanish(*ifindex) {
                        self.pending.delete(&name);
                    }
                }
                if self.resync_counts {
                    self.counters.resyncs += 1;
                    self.counters.resync_corrected += vanished.len() as u64;
                    warn!(
                        "resync #{} complete: {} port(s) corrected ({} vanished)",
                        self.counters.resyncs,
                        self.counters.resync_corrected,
                        vanished.len()
                    );
                }
                self.resync_counts = false;
            }
        }
    }

    /// PortInitDone is checked after every netlink batch and every completed flush; it goes
    /// out in a flush of its own, after the write that emptied the awaited set.
    fn check_init(&mut self) {
        if self.sync.init_due() && !self.pending_init {
            self.pending_init = true;
        }
    }

    /// Send everything pending as one flush (STATE_DB writes, then PortInitDone if due).
    fn launch_flush(&mut self) -> Option<Inflight> {
        if self.pending.is_empty() && !self.pending_init {
            return None;
        }
        let batch = std::mem::take(&mut self.pending);
        let init = std::mem::take(&mut self.pending_init);
        self.counters.flushes += 1;
        let mut store = self.store.clone();
        Some(Box::pin(async move {
            let r = store.flush(&batch, init).await;
            (batch, init, r)
        }))
    }

    fn on_flushed(&mut self, (batch, init, result): FlushResult) {
        match result {
            Ok(present) => {
                for (name, op) in batch.iter() {
                    if op.delete {
                        self.counters.state_dels += 1;
                        info!("Delete {name}(ok) from state db");
                    }
                    if let Some(s) = op.set {
                        if present.contains(name) {
                            self.counters.state_sets += 1;
                            self.sync.on_written(name);
                            info!("Publish {name}(ok:{}) to state db", s.oper_str());
                        } else {
                            self.counters.gate_misses += 1;
                            info!("Cannot find {name} in port table");
                        }
                    }
                }
                if init {
                    self.sync.mark_init_sent();
                    info!("PortInitDone");
                }
                self.backoff = BACKOFF_MIN;
                if self.reconcile {
                    self.reconcile = false;
                    info!("redis is back: re-dumping links to reconcile STATE_DB");
                    self.start_resync();
                }
                self.check_init();
            }
            Err(e) => {
                self.counters.flush_errors += 1;
                if self.counters.flush_errors == 1 || !self.reconcile {
                    warn!(
                        "redis write failed ({e}); keeping {} port update(s) and retrying",
                        batch.len()
                    );
                }
                self.pending.merge_older(batch);
                if init {
                    self.pending_init = true;
                }
                self.reconcile = true;
                let jitter = Duration::from_micros(
                    u64::from(std::process::id() ^ self.counters.flush_errors as u32) % 50_000,
                );
                self.retry_at = Some(Instant::now() + self.backoff + jitter);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// Stop reading netlink; flush what is pending within the configured time.
    async fn shutdown(&mut self, mut inflight: Option<Inflight>) -> Result<()> {
        let limit = self.settings.shutdown_flush;
        let deadline = Instant::now() + limit;
        let mut last_err = String::from("timed out");
        loop {
            if inflight.is_none() {
                inflight = self.launch_flush();
            }
            let Some(f) = inflight.take() else { break };
            match tokio::time::timeout_at(deadline, f).await {
                Ok(done) => {
                    if let (_, _, Err(e)) = &done {
                        last_err = e.to_string();
                        tokio::time::sleep(BACKOFF_MIN).await;
                    }
                    self.on_flushed(done);
                    self.retry_at = None;
                }
                Err(_) => {
                    // The timed-out flush's batch is gone with its future; count it as lost.
                    self.counters.flush_errors += 1;
                    return Err(self.flush_error(limit, last_err, 1));
                }
            }
        }
        info!("counters at exit: {:?}", self.counters);
        Ok(())
    }

    fn flush_error(&self, limit: Duration, reason: String, extra: usize) -> Error {
        info!("counters at exit: {:?}", self.counters);
        Error::Flush {
            pending: self.pending.len() + extra,
            secs: limit.as_secs_f64(),
            reason,
        }
    }
}
