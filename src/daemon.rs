//! The event loop: one `select!` over signals, the log-level subscription, the in-flight Redis
//! flush, the retry timer and the netlink socket. Each turn reads a bounded number of
//! datagrams and runs every message through the port state machine into the outbox; whenever
//! no flush is in flight the outbox's batch goes out as pipelines. Redis errors never leave
//! the loop: the batch is retried with capped, jittered backoff, then a fresh dump reconciles
//! whatever Redis may have lost. Shutdown is an input like any other.

use crate::config::Settings;
use crate::counters::Counters;
use crate::dbconfig::DbConfig;
use crate::error::{Error, Result};
use crate::event::{LinkEvent, LinkOp, NetlinkInput};
use crate::logging::{LogControl, LogTarget};
use crate::netlink::LinkSocket;
use crate::notify::Notifier;
use crate::outbox::{Backoff, Flush, Outbox};
use crate::port::{PortSync, Verdict};
use crate::resync::{Resync, Step};
use crate::startup::{self, Started};
use crate::store::{self, Store};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

type FlushDone = (Flush, redis::RedisResult<Vec<bool>>);
type Inflight = Pin<Box<dyn Future<Output = FlushDone>>>;

/// Build the runtime and run the daemon until SIGTERM/SIGINT.
pub fn run(settings: Settings, config_file: Option<PathBuf>, target: LogTarget) -> Result<()> {
    let log = LogControl::init(
        tracing::level_filters::LevelFilter::INFO,
        target,
        &settings.syslog_socket,
    );
    let dbs = DbConfig::load(&settings.db_config)?.sonic_dbs()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    rt.block_on(async move {
        let sig = |k: SignalKind, what: &str| {
            signal(k).map_err(|e| Error::io(format!("{what} handler"), e))
        };
        let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
        let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
        let hup = sig(SignalKind::hangup(), "SIGHUP")?;
        let started = tokio::select! {
            s = async {
                let store = startup::connect_store(&dbs, settings.redis_timeout).await;
                startup::start(store, &log, &settings).await
            } => s?,
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        };
        Loop::new(started, settings, config_file, log)
            .run(term, int, hup)
            .await
    })
}

struct Loop {
    store: Store,
    sock: LinkSocket,
    sync: PortSync,
    resync: Resync,
    /// Whether the running resync counts (false for the start-up dump).
    resync_counts: bool,
    outbox: Outbox,
    retry_at: Option<Instant>,
    backoff: Backoff,
    counters: Counters,
    settings: Settings,
    config_file: Option<PathBuf>,
    log: LogControl,
    notifier: Notifier,
    last_event: Option<Instant>,
}

impl Loop {
    fn new(s: Started, settings: Settings, config_file: Option<PathBuf>, log: LogControl) -> Loop {
        // The start-up dump is already on its way: track it like a resync, so losses during
        // it are caught, but do not count it as one.
        let mut resync = Resync::default();
        resync.request(s.sock.drops().unwrap_or(0));
        Loop {
            store: s.store,
            sock: s.sock,
            sync: s.sync,
            resync,
            resync_counts: false,
            outbox: Outbox::default(),
            retry_at: None,
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(5)),
            counters: Counters::default(),
            settings,
            config_file,
            log,
            notifier: Notifier::from_env(),
            last_event: None,
        }
    }

    /// The one-line status for systemd (`systemctl status`) and the periodic heartbeat.
    fn status(&self) -> String {
        let (up, down) = self.sync.oper_counts();
        let redis = if self.retry_at.is_some()
            || self.outbox.pending_len() > 0 && self.counters.flush_errors > 0
        {
            "retrying"
        } else {
            "ok"
        };
        let last = match self.last_event {
            Some(t) => format!("{}s ago", t.elapsed().as_secs()),
            None => "none yet".into(),
        };
        format!(
            "ports {} (oper up {up}, down {down}), awaiting {}, PortInitDone {}, redis {redis}, last event {last}, resyncs {}",
            up + down,
            self.sync.expected().count(),
            if self.sync.init_sent() { "sent" } else { "pending" },
            self.counters.resyncs
        )
    }

    async fn run(mut self, mut term: Signal, mut int: Signal, mut hup: Signal) -> Result<()> {
        let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel();
        let _logger_sub = self.subscribe_logger(log_tx).await;
        let mut inflight: Option<Inflight> = None;
        let mut inputs = Vec::new();
        let mut tick = tokio::time::interval(self.notifier.tick(self.settings.heartbeat));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.notifier.ready(&self.status());
        crate::logging::set_buffering(true);
        loop {
            if inflight.is_none() && self.retry_at.is_none() {
                inflight = self.launch();
            }
            // The previous turn's log lines, in one write.
            crate::logging::flush();
            let retry_at = self.retry_at;
            tokio::select! {
                biased;
                _ = term.recv() => { info!("SIGTERM received, shutting down"); break; }
                _ = int.recv() => { info!("SIGINT received, shutting down"); break; }
                _ = hup.recv() => self.reload(),
                Some(push) = log_rx.recv() => self.on_logger_change(push).await,
                done = async { inflight.as_mut().expect("guarded by the condition").await }, if inflight.is_some() => {
                    inflight = None;
                    self.on_flushed(done);
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    self.retry_at = None;
                }
                _ = tick.tick() => self.heartbeat(),
                r = self.sock.read_batch(self.settings.max_datagrams_per_turn, &mut inputs) => match r {
                    Ok(_) => self.on_inputs(&mut inputs),
                    Err(e) => {
                        error!(target: "readData", "netlink reports an error={} on reading a netlink socket", e.raw_os_error().unwrap_or(0));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
        crate::logging::set_buffering(false);
        self.shutdown(inflight).await
    }

    /// Keyspace notifications for CONFIG_DB `LOGGER|portsyncd` (what swssloglevel writes).
    async fn subscribe_logger(
        &mut self,
        tx: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Option<redis::aio::ConnectionManager> {
        let db = self.store.dbs.config.clone();
        let pattern = format!("__keyspace@{}__:{}", db.id, db.key("LOGGER", "portsyncd"));
        let sub = async {
            let mut con = store::connect_push(&db, self.settings.redis_timeout, tx).await?;
            con.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(con)
        };
        match sub.await {
            Ok(con) => Some(con),
            Err(e) => {
                warn!("live log level changes disabled: {e}");
                None
            }
        }
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

    /// The loop is alive: tell systemd (WATCHDOG=1, STATUS=) and write the heartbeat row that
    /// `portsyncd health` reads. The Redis write runs as its own task so a stalled Redis cannot
    /// hold up the loop.
    fn heartbeat(&mut self) {
        self.notifier.alive(&self.status());
        let fields = self.health_fields("running");
        let mut store = self.store.clone();
        tokio::spawn(async move {
            let key = store.dbs.state.key(store::HEALTH_TABLE, "portsyncd");
            let fv: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (*f, v.as_str())).collect();
            let _ = store.hset(false, &key, &fv).await;
        });
    }

    fn health_fields(&self, state: &str) -> Vec<(&'static str, String)> {
        let (up, down) = self.sync.oper_counts();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        vec![
            ("state", state.to_string()),
            ("pid", std::process::id().to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("heartbeat_ms", now_ms.to_string()),
            (
                "interval_ms",
                self.settings.heartbeat.as_millis().to_string(),
            ),
            ("ports", (up + down).to_string()),
            ("oper_up", up.to_string()),
            ("oper_down", down.to_string()),
            ("awaiting", self.sync.expected().count().to_string()),
            ("init_done", self.sync.init_sent().to_string()),
            ("resyncs", self.counters.resyncs.to_string()),
            ("flush_errors", self.counters.flush_errors.to_string()),
        ]
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
                self.settings.max_ports_per_flush = new.max_ports_per_flush;
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
                    self.last_event = Some(Instant::now());
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
                    error!(target: "readData", "netlink reports out of memory on reading a netlink socket. High possibility of a lost message");
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

    fn on_link(&mut self, ev: &LinkEvent) {
        let verdict = self.sync.on_link(ev, self.outbox.pending_mut());
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
            target: "onMsg", "nlmsg type:{} key:{} admin:{} oper:{} addr:{} ifindex:{} master:{}{kind} flags:{}",
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
                    target: "onMsg", "nlmsg type:{} Ignoring message for old interface {}({})",
                    ev.op.number(),
                    ev.name,
                    ev.ifindex
                );
            }
            Verdict::Accepted { renamed_from } => {
                self.counters.accepted += 1;
                if let Some(old) = renamed_from {
                    info!(
                        "{old} renamed to {} (ifindex {}): removing {old} from state db",
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
        let known: Vec<u32> = self.sync.known().collect();
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
                        self.outbox.pending_mut().delete(&name);
                    }
                }
                if std::mem::take(&mut self.resync_counts) {
                    self.counters.resyncs += 1;
                    self.counters.resync_corrected += vanished.len() as u64;
                    warn!(
                        "resync #{} complete: {} port update(s) corrected so far, {} vanished port(s) this time",
                        self.counters.resyncs,
                        self.counters.resync_corrected,
                        vanished.len()
                    );
                }
            }
        }
    }

    /// Checked after every netlink batch and every completed flush. PortInitDone goes out
    /// after the write that emptied the awaited set has landed, behind any writes pending.
    fn check_init(&mut self) {
        if self.sync.init_due() && !self.outbox.init_queued() && !self.outbox.inflight() {
            self.outbox.want_init();
        }
    }

    fn launch(&mut self) -> Option<Inflight> {
        let flush = self.outbox.take(self.settings.max_ports_per_flush)?;
        self.counters.flushes += 1;
        let mut store = self.store.clone();
        Some(Box::pin(async move {
            let r = store.flush(&flush.batch, flush.init).await;
            (flush, r)
        }))
    }

    fn on_flushed(&mut self, (flush, result): FlushDone) {
        match result {
            Ok(written) => {
                for ((name, op), written) in flush.batch.iter().zip(written) {
                    if op.delete {
                        self.counters.state_dels += 1;
                        info!(target: "onMsg", "Delete {name}(ok) from state db");
                    }
                    if let Some(s) = op.set {
                        if written {
                            self.counters.state_sets += 1;
                            self.sync.on_written(name);
                            info!(target: "onMsg", "Publish {name}(ok:{}) to state db", s.oper_str());
                        } else {
                            self.counters.gate_misses += 1;
                            info!(target: "onMsg", "Cannot find {name} in port table");
                        }
                    }
                }
                if flush.init {
                    self.sync.mark_init_sent();
                    info!(target: "main", "PortInitDone");
                }
                self.backoff.reset();
                if self.outbox.succeeded() {
                    info!("redis is reachable again: re-dumping links to reconcile STATE_DB");
                    self.start_resync();
                }
                self.check_init();
            }
            Err(e) => {
                self.counters.flush_errors += 1;
                warn!(
                    "redis write failed ({e}); keeping {} port update(s) to retry",
                    flush.batch.len()
                );
                self.outbox.failed(flush);
                let delay = self
                    .backoff
                    .next(u64::from(std::process::id()) ^ self.counters.flush_errors);
                self.retry_at = Some(Instant::now() + delay);
            }
        }
    }

    /// Stop reading netlink; flush what is pending within the configured time.
    async fn shutdown(mut self, mut inflight: Option<Inflight>) -> Result<()> {
        self.notifier.stopping();
        let limit = self.settings.shutdown_flush;
        let deadline = Instant::now() + limit;
        let mut last_err = String::from("timed out");
        loop {
            if inflight.is_none() {
                inflight = self.launch();
            }
            let Some(f) = inflight.take() else { break };
            match tokio::time::timeout_at(deadline, f).await {
                Ok(done) => {
                    if let (_, Err(e)) = &done {
                        last_err = e.to_string();
                    }
                    let failed = done.1.is_err();
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
        let key = self.store.dbs.state.key(store::HEALTH_TABLE, "portsyncd");
        let fv: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (*f, v.as_str())).collect();
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            self.store.hset(false, &key, &fv),
        )
        .await;
        if self.outbox.idle() {
            Ok(())
        } else {
            Err(Error::Flush {
                pending: self.outbox.pending_len().max(1),
                secs: limit.as_secs_f64(),
                reason: last_err,
            })
        }
    }
}
