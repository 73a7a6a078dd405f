//! portsyncd: mirrors kernel link state into SONiC's Redis tables, wire-compatible with the
//! C++ daemon. The path of an event: `netlink` (decode) → `port` (decide) → `batch` (fold per
//! port) → `store` (pipelines to Redis), driven by the one loop in `daemon`.
#![deny(unsafe_code)]

pub mod alertrows; // which resolved alert rows STATE_DB keeps: bounded count and age (pure)
pub mod alerts; // pure alert engine: transitions and ticks in, alert effects out
pub mod alertview; // `portsyncd alerts`: the firing alerts from STATE_DB
pub mod backoff; // capped, jittered backoff for whole-flush retries (pure)
pub mod batch; // one turn's STATE_DB writes folded per port (pure)
pub mod cfgview; // the live view of CONFIG_DB PORT|* and the PortConfigDone count (pure)
pub mod checkconfig; // --check-config: files, sockets (as the unit runs), PING
pub mod cli; // command-line definition
pub mod config; // TOML settings + flags, validated once
pub mod consumer; // ConsumerStateTable stand-in (orchagent's side), for the lab and tests
pub mod counters; // the loop's own counters
pub mod daemon; // the event loop: one select! over netlink, Redis completions, timers, signals
pub mod dbconfig; // database_config.json → socket, id, separator per DB
pub mod dbwait; // start-up waits for database_config.json and Redis, and says why
pub mod error; // the one boundary error type and its exit codes
pub mod event; // our own types at the netlink boundary
pub mod flush; // one Flush → gate, STATE_DB pipeline, APPL_DB sets; error replies per key
pub mod flushscript; // the gate and the STATE_DB writes in one script call (one Redis instance)
pub mod fuzzing; // entry points shared by the fuzz targets and the corpus replay test
pub mod health; // `portsyncd health`: checks and exit codes
pub mod keyretry; // per-key retry after an error reply: backoff and log rate limit (pure)
pub mod lab; // `portsyncd lab`: the self-contained demo
pub mod lease; // one writer: the STATE_DB lease, its rule and its script
pub mod logging; // log targets, SONiC level names, live level changes
mod logsink; // line formats (terminal, journald, syslog) and writers
pub mod metrics; // OpenMetrics text from a snapshot of the loop's counters
pub mod metrics_http; // the /metrics endpoint: bounded, off the loop's hot path
pub mod netlink; // the only module that knows netlink-packet-route
pub mod notify; // sd_notify READY / STATUS / WATCHDOG / STOPPING
pub mod outbox; // what still has to reach Redis: pending batch, retries (pure)
pub mod port; // the pure port state machine (filters, awaited ports, renames)
pub mod pst; // ProducerStateTable command encoding
pub mod ratelimit; // log lines of a repeating condition, at most one per interval (pure)
pub mod requests; // keys in command buffers, pipelines two in flight, poll-once
pub mod resync; // overflow/reconnect resync bookkeeping (pure)
pub mod rules; // alert rule definitions and the values the engine emits
mod shrink; // when a collection that grew in a storm gives its room back (pure)
pub mod sockaccess; // may this process open a unix socket by its mode alone (pure + edges)
pub mod startmode; // cold / warm / reattach, and the watch for swss restarts (pure)
pub mod startup; // the C++ start-up sequence (spec §1.2)
pub mod store; // SONiC tables over Redis
mod sys; // the only unsafe code: socket options, glibc's local time and heap trim
mod syslog; // RFC 3164 datagrams on a non-blocking, reconnecting socket

use cli::{Cli, Command};
use config::Settings;
use error::Result;

/// Run what the command line asks for; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    if cli.namespace.is_some() && cli.db_config.is_some() {
        return Err(error::Error::Usage(
            "--db-config and --namespace cannot be used together: --namespace reads NS's database_config.json from --db-global".into(),
        ));
    }
    let db_config = match &cli.namespace {
        Some(ns) => Some(dbconfig::resolve_namespace(&cli.db_global, ns)?),
        None => cli.db_config.clone(),
    };
    let mut settings = match Settings::load(cli.config.as_deref(), db_config.as_deref()) {
        Ok(s) => s,
        // A health check that cannot read its configuration answers UNKNOWN, as monitors expect.
        Err(e) if matches!(cli.command, Some(Command::Health { .. })) => {
            println!("PORTSYNCD UNKNOWN - {e}");
            return Ok(health::Status::Unknown.code());
        }
        Err(e) => return Err(e),
    };
    settings.start_mode = cli.start_mode;
    settings.track_port_count |= cli.track_port_count;
    if cli.check_config {
        return checkconfig::run(&settings);
    }
    match cli.command {
        None => daemon::run(settings, cli.config, cli.log_target).map(|()| 0),
        Some(Command::Lab { ports, seconds }) => lab::run(ports, seconds).map(|()| 0),
        Some(Command::Health { verbose, json }) => Ok(health::run(&settings, verbose, json)),
        Some(Command::Consume) => consumer::run(&settings).map(|()| 0),
        Some(Command::Alerts { all, json }) => alertview::run(&settings, all, json).map(|()| 0),
        Some(Command::Man) => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| error::Error::io("writing the man page", e))?;
            Ok(0)
        }
    }
}
