//! The event loop: one `select!` over signals, the log-level subscription, the in-flight Redis
//! flush, the retry timer, the netlink socket and, last, the /metrics endpoint's requests for
//! a snapshot. Each turn reads a bounded number of datagrams and runs every message through the
//! port state machine into the outbox; whenever no flush is in flight the outbox's batch goes
//! out as pipelines. Redis errors never leave
//! the loop: the batch is retried with capped, jittered backoff, then a fresh dump reconciles
//! whatever Redis may have lost. Shutdown is an input like any other.

use crate::alertrows::AlertRows;
use crate::alerts::Engine;
use crate::config::Settings;
use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::lease::{Lease, Renewal};
use crate::logging::{LogControl, LogTarget};
use crate::metrics::Metrics;
use crate::netlink::LinkSocket;
use crate::notify::Notifier;
use crate::outbox::{Backoff, Flush, FlushReply, Outbox};
use crate::port::PortSync;
use crate::ratelimit::{suppressed_note, RateLimit};
use crate::resync::Resync;
use crate::startmode::{Mode, SwssWatch};
use crate::startup::{self, Started};
use crate::store::{self, Store};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;
use tracing::{error, info, warn};

mod cfgwatch;
mod control;
mod follow;
mod heartbeat;
mod inputs;
mod outputs;
mod shutdown;

/// A finished flush: what was sent, when its oldest message arrived, and what Redis said.
type FlushDone = (Flush, Option<Instant>, redis::RedisResult<FlushReply>);
type Inflight = Pin<Box<dyn Future<Output = FlushDone>>>;

/// Build the runtime and run the daemon until SIGTERM/SIGINT.
pub fn run(settings: Settings, config_file: Option<PathBuf>, target: LogTarget) -> Result<()> {
    let log = LogControl::init(
        tracing::level_filters::LevelFilter::INFO,
        target,
        &settings.syslog_socket,
    );
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
                let store =
                    startup::connect_store(&settings.db_config, settings.redis_timeout).await?;
                startup::start(store, &log, &settings).await
            } => s?,
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        };
        // Start-up's CONFIG_DB copies and pipelines are freed: return their pages.
        crate::sys::trim_heap();
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
    /// When the pending batch last went from empty to non-empty (event-to-Redis latency).
    pending_since: Option<Instant>,
    alerts: Engine,
    /// Which resolved alert rows STATE_DB keeps.
    alert_rows: AlertRows,
    metrics: Metrics,
    started: Instant,
    /// `clock_ms()` read once at the start of the netlink batch being handled.
    turn_ms: u64,
    /// STATE_DB rows written since the heap was last trimmed.
    written_since_trim: usize,
    started_wall_ms: u64,
    /// Netlink read errors are logged at most once a second (a failing read repeats every
    /// 10 ms).
    read_errors: RateLimit,
    mode: Mode,
    switch_type: String,
    /// When to look for swss having restarted (`PortConfigDone` gone).
    watch: SwssWatch,
    /// A `PortConfigDone` check or a re-publication in progress.
    swss_task: Option<follow::SwssTask>,
    /// The live CONFIG_DB `PORT|*` view, the ports notifications named, the Redis task
    /// reading or writing for it, and heartbeats since the last full re-read.
    cfg: crate::cfgview::CfgView,
    cfg_dirty: rustc_hash::FxHashSet<String>,
    cfg_task: Option<cfgwatch::CfgTask>,
    cfg_ticks: u32,
    lease: Lease,
    /// Where a heartbeat task reports that another instance took the lease (set by `run`).
    lease_lost: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Loop {
    fn new(s: Started, settings: Settings, config_file: Option<PathBuf>, log: LogControl) -> Loop {
        // The start-up dump is already on its way: track it like a resync, so losses during
        // it are caught, but do not count it as one.
        let mut resync = Resync::default();
        resync.request(s.sock.drops().unwrap_or(0));
        let settings_alerts = settings.alerts.clone();
        let alert_rows = AlertRows::new(
            settings.alert_resolved_keep,
            settings.alert_resolved.as_millis() as u64,
        );
        let mut outbox = Outbox::default();
        for name in &s.gone_rows {
            info!("reattach: {name} has no netdev any more: removing it from state db");
            outbox.pending_mut().delete(name);
        }
        let mut watch = SwssWatch::default();
        if s.config_done_seen {
            watch.arm();
        }
        let counters = Counters {
            undecodable_links: s.undecodable,
            ..Counters::default()
        };
        let mut l = Loop {
            store: s.store,
            sock: s.sock,
            sync: s.sync,
            resync,
            resync_counts: false,
            outbox,
            retry_at: None,
            // Capped at 1 s: Redis is local, a retry is one failed connect, and a 2 s restart
            // cost 4.6 s more before the first retry at the old 5 s cap (scripts/soak).
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(1)),
            counters,
            settings,
            config_file,
            log,
            notifier: Notifier::from_env(),
            last_event: None,
            pending_since: None,
            alerts: Engine::new(settings_alerts, 0, s.config_mtu),
            alert_rows,
            metrics: Metrics::default(),
            started: Instant::now(),
            turn_ms: 0,
            written_since_trim: 0,
            started_wall_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            read_errors: RateLimit::new(1000),
            mode: s.mode,
            switch_type: s.switch_type,
            watch,
            swss_task: None,
            cfg: crate::cfgview::CfgView::new(s.configured, s.port_count),
            cfg_dirty: Default::default(),
            cfg_task: None,
            cfg_ticks: 0,
            lease: s.lease,
            lease_lost: None,
        };
        // Start-up sets that got an error reply are retried from here, each on its own.
        l.park_failed_sets(s.failed_sets);
        l
    }

    /// Park ProducerStateTable sets that got an error reply (start-up, swss restart): each is
    /// reported and retried on its own backoff.
    fn park_failed_sets(&mut self, sets: crate::store::FailedSets) {
        for (key, fvs, e) in sets {
            let note = self.outbox.park_appl(key, fvs, e, self.clock_ms());
            self.on_key_note(note);
        }
    }

    async fn run(mut self, mut term: Signal, mut int: Signal, mut hup: Signal) -> Result<()> {
        let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel();
        self.subscribe_logger(log_tx);
        let (appl_tx, mut appl_rx) = tokio::sync::mpsc::unbounded_channel();
        let _appl_sub = self.subscribe_appl(appl_tx).await;
        let (cfg_tx, mut cfg_rx) = tokio::sync::mpsc::unbounded_channel();
        let _cfg_sub = self.subscribe_config_ports(cfg_tx).await;
        self.launch_cfg();
        let (lease_tx, mut lease_rx) = tokio::sync::mpsc::unbounded_channel();
        self.lease_lost = Some(lease_tx);
        let mut lost = None;
        let mut inflight: Option<Inflight> = None;
        let mut inputs = Vec::new();
        let mut feed = match self.settings.metrics_listen {
            Some(addr) => crate::metrics_http::Feed::start(addr, self.metrics.clone()),
            None => None,
        };
        let mut tick = tokio::time::interval(self.notifier.tick(self.settings.heartbeat));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.notifier.ready(&self.status());
        crate::logging::set_buffering(true);
        loop {
            if inflight.is_none() && self.retry_at.is_none() {
                inflight = self.launch();
                // Its first poll hands the request to the connection's task at once.
                if let Some(f) = inflight.as_mut() {
                    if let Poll::Ready(done) = crate::requests::poll_once(f).await {
                        inflight = None;
                        self.on_flushed(done);
                    }
                }
            }
            // In a storm the netlink socket is always readable, so select! never waits and
            // the Redis connections' tasks would not run until the whole storm was read: the
            // flush would follow the reading instead of overlapping it. While a flush is in
            // flight, yield each turn so its requests go out and its replies come in
            // meanwhile. Twice: the first yield lets the runtime poll for I/O (which wakes a
            // connection whose reply arrived), the second lets that connection run.
            if inflight.is_some() {
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
            }
            // The previous turn's log lines, in one write — after the flush's request is on
            // its way, so the write is not on the event-to-Redis path.
            crate::logging::flush();
            let retry_at = self.retry_at;
            // A key parked after an error reply wakes the loop when its backoff ends (only
            // when a flush could start then, so it never spins).
            let key_due = match (&inflight, retry_at) {
                (None, None) => self
                    .outbox
                    .next_due()
                    .map(|ms| self.started + Duration::from_millis(ms)),
                _ => None,
            };
            let fast_checks = self.fast_checks();
            let settles_at = self.cfg_settles_at();
            tokio::select! {
                biased;
                _ = term.recv() => { info!("SIGTERM received, shutting down"); break; }
                _ = int.recv() => { info!("SIGINT received, shutting down"); break; }
                Some(holder) = lease_rx.recv() => {
                    error!("writer lease lost, shutting down: now held by {holder}");
                    lost = Some(holder);
                    break;
                }
                _ = hup.recv() => self.reload(),
                Some(push) = log_rx.recv() => self.on_logger_change(push).await,
                Some(push) = appl_rx.recv() => self.on_appl_push(push),
                done = async { self.swss_task.as_mut().expect("guarded by the condition").await }, if self.swss_task.is_some() => {
                    self.swss_task = None;
                    self.on_swss_done(done);
                }
                _ = tokio::time::sleep(crate::startmode::FAST), if fast_checks => self.launch_check(),
                Some(push) = cfg_rx.recv() => self.on_config_push(push),
                done = async { self.cfg_task.as_mut().expect("guarded by the condition").await }, if self.cfg_task.is_some() => {
                    self.cfg_task = None;
                    self.on_cfg_done(done);
                }
                _ = tokio::time::sleep_until(settles_at.unwrap_or_else(Instant::now)), if settles_at.is_some() => self.launch_cfg(),
                done = async { inflight.as_mut().expect("guarded by the condition").await }, if inflight.is_some() => {
                    inflight = None;
                    self.on_flushed(done);
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    self.retry_at = None;
                }
                _ = tick.tick() => {
                    self.retry_dump();
                    self.alert_tick();
                    self.heartbeat();
                    self.launch_check();
                    self.reread_config();
                }
                r = self.sock.read_batch(self.settings.max_datagrams_per_turn, &mut inputs) => match r {
                    Ok(_) => self.on_inputs(&mut inputs),
                    Err(e) => {
                        if let Some(n) = self.read_errors.admit(self.clock_ms()) {
                            error!(target: "readData", "netlink reports an error={} on reading a netlink socket{}", e.raw_os_error().unwrap_or(0), suppressed_note(n));
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                // After netlink: a scrape never delays reading it (metrics_http).
                _ = async { feed.as_mut().expect("guarded by the condition").wanted().await }, if feed.is_some() => {
                    let snap = self.metrics_snapshot();
                    if let Some(f) = feed.as_mut() {
                        f.publish(snap);
                    }
                }
                _ = tokio::time::sleep_until(key_due.unwrap_or_else(Instant::now)), if key_due.is_some() => {}
            }
        }
        crate::logging::set_buffering(false);
        self.shutdown(inflight, lost).await
    }
}
