//! portsyncd: mirrors kernel link state into SONiC's Redis tables, wire-compatible with the
//! C++ daemon. The path of an event: `netlink` (decode) → `port` (decide) → `batch` (fold per
//! port) → `store` (pipelines to Redis), driven by the one loop in `daemon`.
#![deny(unsafe_code)]

pub mod batch; // one turn's STATE_DB writes folded per port (pure)
pub mod cli; // command-line definition
pub mod config; // TOML settings + flags, validated once
pub mod consumer; // ConsumerStateTable stand-in (orchagent's side), for the lab and tests
pub mod counters; // the loop's own counters
pub mod daemon; // the event loop: one select! over netlink, Redis completions, timers, signals
pub mod dbconfig; // database_config.json → socket, id, separator per DB
pub mod error; // the one boundary error type and its exit codes
pub mod event; // our own types at the netlink boundary
pub mod lab; // `portsyncd lab`: the self-contained demo
pub mod logging; // tracing setup, SONiC level names, live level changes
pub mod netlink; // the only module that knows netlink-packet-route
pub mod notify; // sd_notify READY / STATUS / WATCHDOG / STOPPING
pub mod outbox; // what still has to reach Redis: pending batch, retries (pure)
pub mod port; // the pure port state machine (filters, awaited ports, renames)
pub mod pst; // ProducerStateTable command encoding
pub mod resync; // overflow/reconnect resync bookkeeping (pure)
pub mod startup; // the C++ start-up sequence (spec §1.2)
pub mod store; // SONiC tables over Redis
mod sys; // the only unsafe code: two socket options

use cli::{Cli, Command};
use config::Settings;
use error::Result;

/// Run what the command line asks for.
pub fn run(cli: Cli) -> Result<()> {
    let settings = Settings::load(cli.config.as_deref(), cli.db_config.as_deref())?;
    if cli.check_config {
        let dbs = dbconfig::DbConfig::load(&settings.db_config)?.sonic_dbs()?;
        println!(
            "configuration OK: APPL_DB {} ({}), CONFIG_DB {}, STATE_DB {} via {}",
            dbs.appl.id,
            dbs.appl.separator,
            dbs.config.id,
            dbs.state.id,
            dbs.appl.socket.display()
        );
        return Ok(());
    }
    match cli.command {
        None => daemon::run(settings, cli.config),
        Some(Command::Lab { ports, seconds }) => lab::run(ports, seconds),
        Some(Command::Consume) => consumer::run(&settings),
    }
}
