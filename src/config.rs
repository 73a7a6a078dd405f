//! Settings: the optional TOML file (`--config`) merged with command-line flags and validated
//! once. Unknown keys and out-of-range values are rejected with the file, the key and what was
//! expected. With no file, every setting has the C++ daemon's behaviour as its default.

use crate::dbconfig::DEFAULT_DB_CONFIG;
use crate::error::{Error, Result};
use crate::logging::{sonic_level, SONIC_LEVELS};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    db_config: Option<PathBuf>,
    log_level: Option<String>,
    netlink_rcvbuf: Option<u64>,
    redis_timeout_ms: Option<u64>,
    max_datagrams_per_turn: Option<u64>,
    max_ports_per_flush: Option<u64>,
    shutdown_flush_ms: Option<u64>,
    heartbeat_ms: Option<u64>,
    syslog_socket: Option<PathBuf>,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `database_config.json` to read.
    pub db_config: PathBuf,
    /// A SONiC priority name that overrides CONFIG_DB `LOGGER|portsyncd` LOGLEVEL when set.
    pub log_level: Option<String>,
    /// Netlink receive buffer in bytes (SO_RCVBUFFORCE; the kernel reports twice this).
    pub netlink_rcvbuf: usize,
    /// Connect and reply timeout for every Redis request.
    pub redis_timeout: Duration,
    /// Datagrams read per loop turn before timers and signals get a look in.
    pub max_datagrams_per_turn: usize,
    /// Ports per Redis flush (bounds pipeline size, memory and per-flush latency).
    pub max_ports_per_flush: usize,
    /// How long SIGTERM waits for pending writes before giving up.
    pub shutdown_flush: Duration,
    /// How often the loop writes its heartbeat (STATE_DB `PORTSYNCD_HEALTH_TABLE|portsyncd`)
    /// and its systemd status.
    pub heartbeat: Duration,
    /// The syslog socket for `--log-target syslog`.
    pub syslog_socket: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            db_config: PathBuf::from(DEFAULT_DB_CONFIG),
            log_level: None,
            netlink_rcvbuf: 16 * 1024 * 1024,
            redis_timeout: Duration::from_secs(2),
            max_datagrams_per_turn: 256,
            max_ports_per_flush: 512,
            shutdown_flush: Duration::from_secs(5),
            heartbeat: Duration::from_secs(5),
            syslog_socket: PathBuf::from("/dev/log"),
        }
    }
}

fn ranged(file: &Path, key: &str, v: Option<u64>, lo: u64, hi: u64, default: u64) -> Result<u64> {
    match v {
        None => Ok(default),
        Some(v) if (lo..=hi).contains(&v) => Ok(v),
        Some(v) => Err(Error::config(
            file,
            key,
            format!("an integer from {lo} to {hi} (got {v})"),
        )),
    }
}

impl Settings {
    /// Parse and validate a TOML file's text.
    pub fn parse(file: &Path, text: &str) -> Result<Settings> {
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_owned();
            Error::config(file, "(toml)", msg)
        })?;
        let d = Settings::default();
        if let Some(level) = &raw.log_level {
            if sonic_level(level).is_none() {
                return Err(Error::config(
                    file,
                    "log_level",
                    format!("one of {SONIC_LEVELS:?} (got {level:?})"),
                ));
            }
        }
        Ok(Settings {
            db_config: raw.db_config.unwrap_or(d.db_config),
            log_level: raw.log_level,
            netlink_rcvbuf: ranged(
                file,
                "netlink_rcvbuf",
                raw.netlink_rcvbuf,
                4096,
                1 << 30,
                d.netlink_rcvbuf as u64,
            )? as usize,
            redis_timeout: Duration::from_millis(ranged(
                file,
                "redis_timeout_ms",
                raw.redis_timeout_ms,
                10,
                600_000,
                2000,
            )?),
            max_datagrams_per_turn: ranged(
                file,
                "max_datagrams_per_turn",
                raw.max_datagrams_per_turn,
                1,
                65536,
                256,
            )? as usize,
            max_ports_per_flush: ranged(
                file,
                "max_ports_per_flush",
                raw.max_ports_per_flush,
                1,
                65536,
                512,
            )? as usize,
            shutdown_flush: Duration::from_millis(ranged(
                file,
                "shutdown_flush_ms",
                raw.shutdown_flush_ms,
                0,
                600_000,
                5000,
            )?),
            heartbeat: Duration::from_millis(ranged(
                file,
                "heartbeat_ms",
                raw.heartbeat_ms,
                100,
                600_000,
                5000,
            )?),
            syslog_socket: raw.syslog_socket.unwrap_or(d.syslog_socket),
        })
    }

    /// Read the file (if any), then let `--db-config` override it.
    pub fn load(file: Option<&Path>, db_config: Option<&Path>) -> Result<Settings> {
        let mut s = match file {
            None => Settings::default(),
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    Error::config(f, "(file)", format!("a readable TOML file ({e})"))
                })?;
                Settings::parse(f, &text)?
            }
        };
        if let Some(p) = db_config {
            s.db_config = p.to_path_buf();
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings> {
        Settings::parse(Path::new("/etc/portsyncd.toml"), text)
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn values_are_read() {
        let s = parse("log_level = \"DEBUG\"\nnetlink_rcvbuf = 65536\nredis_timeout_ms = 100\n")
            .unwrap();
        assert_eq!(s.log_level.as_deref(), Some("DEBUG"));
        assert_eq!(s.netlink_rcvbuf, 65536);
        assert_eq!(s.redis_timeout, Duration::from_millis(100));
    }

    /// (file text, text the one-line error must contain)
    #[test]
    fn bad_files_name_the_key() {
        let cases = [
            ("log_levle = \"DEBUG\"", "log_levle"),
            ("log_level = \"LOUD\"", "log_level"),
            ("netlink_rcvbuf = 1", "netlink_rcvbuf"),
            ("netlink_rcvbuf = \"big\"", "(toml)"),
            ("redis_timeout_ms = 0", "redis_timeout_ms"),
            ("[[", "(toml)"),
        ];
        for (text, want) in cases {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.starts_with("/etc/portsyncd.toml: "), "{msg}");
            assert!(msg.contains(want), "{want} not in {msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
    }
}
