//! The command line. No arguments runs the daemon exactly as the swss container starts the
//! C++ binary; options select other files; subcommands are tools around the daemon.

use crate::logging::LogTarget;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "portsyncd",
    version,
    about = "SONiC port state sync: kernel links to Redis"
)]
pub struct Cli {
    /// SONiC database_config.json (default /var/run/redis/sonic-db/database_config.json)
    #[arg(long, value_name = "PATH", global = true)]
    pub db_config: Option<PathBuf>,
    /// Multi-ASIC: use this namespace's database (e.g. asic0) from database_global.json
    #[arg(long, value_name = "NS", global = true)]
    pub namespace: Option<String>,
    /// database_global.json, for --namespace
    #[arg(long, value_name = "PATH", global = true, default_value = crate::dbconfig::DEFAULT_DB_GLOBAL)]
    pub db_global: std::path::PathBuf,
    /// Optional TOML settings file
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Where log lines go
    #[arg(long, value_enum, value_name = "TARGET", default_value_t = LogTarget::Auto, global = true)]
    pub log_target: LogTarget,
    /// Validate the settings file and database_config.json, print the result, and exit
    #[arg(long)]
    pub check_config: bool,
    /// How the daemon starts: decided from APPL_DB's PortConfigDone (auto), the C++ cold start
    /// (cold), or rejoining a running swss without touching a port (reattach)
    #[arg(long, value_enum, value_name = "MODE", default_value_t = crate::startmode::StartArg::Auto)]
    pub start_mode: crate::startmode::StartArg,
    /// Keep APPL_DB PortConfigDone's count equal to the CONFIG_DB port count after port
    /// breakout (also `track_port_count = true` in the settings file)
    #[arg(long)]
    pub track_port_count: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Self-contained demo: a lab namespace with Ethernet ports, a private redis-server, an
    /// orchagent stand-in, and the daemon, with STATE_DB shown live. Needs root.
    Lab {
        /// Number of Ethernet ports to create
        #[arg(long, default_value_t = 8)]
        ports: u32,
        /// Leave after this many seconds (default: run until Ctrl-C)
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Check the running daemon, Redis, PortInitDone and kernel/STATE_DB drift. Exit 0 OK,
    /// 1 WARNING, 2 CRITICAL, 3 UNKNOWN (for cron, monit, Nagios-style checks)
    Health {
        /// One line per check, and every drifting port
        #[arg(short, long)]
        verbose: bool,
        /// A JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// List the firing alerts the daemon recorded in STATE_DB
    Alerts {
        /// Resolved ones too
        #[arg(long)]
        all: bool,
        /// JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print the man page (roff) generated from this command line
    #[command(hide = true)]
    Man,
    /// Orchagent stand-in for a box without swss (lab, tests, trying it on plain Debian):
    /// pops APPL_DB PORT_TABLE as orchagent's ConsumerStateTable does, until killed. Never run
    /// it next to a real orchagent. `consume` is its old name
    #[command(name = "orchagent-standin", alias = "consume")]
    Consume,
}
