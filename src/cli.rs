//! The command line. No arguments runs the daemon exactly as the swss container starts the
//! C++ binary; options select other files; subcommands are tools around the daemon.

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
    /// Optional TOML settings file
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Validate the settings file and database_config.json, print the result, and exit
    #[arg(long)]
    pub check_config: bool,
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
    /// ConsumerStateTable stand-in for orchagent: pops APPL_DB PORT_TABLE until killed
    #[command(hide = true)]
    Consume,
}
