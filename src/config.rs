//! Settings: the optional TOML file (`--config`) merged with command-line flags and validated
//! once. Unknown keys and out-of-range values are rejected with the file, the key and what was
//! expected. With no file, every setting has the C++ daemon's behaviour as its default.

use crate::alerts::{default_rules, Kind, Rule, Severity};
use crate::dbconfig::DEFAULT_DB_CONFIG;
use crate::error::{Error, Result};
use crate::logging::{sonic_level, SONIC_LEVELS};
use serde::Deserialize;
use std::net::SocketAddr;
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
    metrics_listen: Option<String>,
    alert_resolved_keep: Option<u64>,
    alert_resolved_ms: Option<u64>,
    track_port_count: Option<bool>,
    #[serde(default)]
    alert: Option<Vec<RawAlert>>,
}

/// One `[[alert]]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    name: Option<String>,
    kind: Option<String>,
    ports: Option<String>,
    severity: Option<String>,
    for_ms: Option<u64>,
    threshold: Option<u64>,
    window_ms: Option<u64>,
    after_ms: Option<u64>,
}

fn alert_rule(file: &Path, i: usize, raw: RawAlert) -> Result<Rule> {
    let err = |field: &str, expected: String| {
        Error::config(file, format!("alert[{i}].{field}"), expected)
    };
    let kind_name = raw
        .kind
        .ok_or_else(|| err("kind", format!("one of {ALERT_KINDS:?}")))?;
    if !ALERT_KINDS.contains(&kind_name.as_str()) {
        return Err(err(
            "kind",
            format!("one of {ALERT_KINDS:?} (got {kind_name:?})"),
        ));
    }
    let windowed = matches!(kind_name.as_str(), "flap" | "resync");
    let need = |field: &str, v: Option<u64>, lo: u64| match v {
        Some(v) if v >= lo => Ok(v),
        Some(v) => Err(err(
            field,
            format!("an integer >= {lo} for kind {kind_name} (got {v})"),
        )),
        None => Err(err(
            field,
            format!("an integer >= {lo}: kind {kind_name} needs it"),
        )),
    };
    let unused = |field: &str, v: Option<u64>| match v {
        Some(_) => Err(err(
            field,
            format!("nothing: kind {kind_name} does not use it"),
        )),
        None => Ok(()),
    };
    let kind = if windowed {
        unused("after_ms", raw.after_ms)?;
        let max = u32::try_from(need("threshold", raw.threshold, 1)?)
            .map_err(|_| err("threshold", "a 32-bit integer".into()))?;
        let window_ms = need("window_ms", raw.window_ms, 1000)?;
        if kind_name == "flap" {
            Kind::Flap { max, window_ms }
        } else {
            Kind::Resync { max, window_ms }
        }
    } else {
        unused("threshold", raw.threshold)?;
        unused("window_ms", raw.window_ms)?;
        let after_ms = need("after_ms", raw.after_ms, 0)?;
        match kind_name.as_str() {
            "oper_down" => Kind::OperDown { after_ms },
            "missing_port" => Kind::MissingPort { after_ms },
            "init_stall" => Kind::InitStall { after_ms },
            "mtu_mismatch" => Kind::MtuMismatch { after_ms },
            other => {
                return Err(err(
                    "kind",
                    format!("one of {ALERT_KINDS:?} (got {other:?})"),
                ))
            }
        }
    };
    let severity = match raw.severity.as_deref().unwrap_or("warning") {
        "info" => Severity::Info,
        "warning" => Severity::Warning,
        "critical" => Severity::Critical,
        other => {
            return Err(err(
                "severity",
                format!("info, warning or critical (got {other:?})"),
            ))
        }
    };
    let ports = raw.ports.unwrap_or_else(|| "*".into());
    // By characters, not bytes: a name may end in a multi-byte character (issue #12 item 3).
    if ports.is_empty() || ports.strip_suffix('*').unwrap_or(&ports).contains('*') {
        return Err(err(
            "ports",
            format!("a port name, a prefix ending in '*', or '*' (got {ports:?})"),
        ));
    }
    let name = raw.name.unwrap_or_else(|| kind.name().to_owned());
    if name.is_empty() || name.contains('|') {
        return Err(err(
            "name",
            format!("a non-empty name without '|' (got {name:?})"),
        ));
    }
    Ok(Rule {
        name,
        kind,
        severity,
        ports,
        for_ms: raw.for_ms.unwrap_or(0),
    })
}

const ALERT_KINDS: [&str; 6] = [
    "flap",
    "oper_down",
    "missing_port",
    "init_stall",
    "mtu_mismatch",
    "resync",
];

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
    /// Where `/metrics` is served; `None` turns the endpoint off.
    pub metrics_listen: Option<SocketAddr>,
    /// Alert rules (`[[alert]]`); the defaults when the file has none.
    pub alerts: Vec<Rule>,
    /// Resolved alert rows kept in STATE_DB at most (the oldest are deleted first).
    pub alert_resolved_keep: usize,
    /// How long a resolved alert row is kept in STATE_DB.
    pub alert_resolved: Duration,
    /// `--start-mode` (command line only).
    pub start_mode: crate::startmode::StartArg,
    /// Keep APPL_DB `PortConfigDone count` equal to the number of CONFIG_DB ports after
    /// port breakout (sonic-swss#2989). Off by default: the C++ daemon writes it once.
    pub track_port_count: bool,
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
            // Off unless configured: the C++ daemon opens no port (the packaged settings file
            // turns it on, on loopback).
            metrics_listen: None,
            alerts: default_rules(),
            alert_resolved_keep: crate::alertrows::DEFAULT_KEEP,
            alert_resolved: Duration::from_millis(crate::alertrows::DEFAULT_AGE_MS),
            start_mode: Default::default(),
            track_port_count: false,
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
            alert_resolved_keep: ranged(
                file,
                "alert_resolved_keep",
                raw.alert_resolved_keep,
                0,
                65536,
                d.alert_resolved_keep as u64,
            )? as usize,
            alert_resolved: Duration::from_millis(ranged(
                file,
                "alert_resolved_ms",
                raw.alert_resolved_ms,
                0,
                30 * 24 * 3600 * 1000,
                d.alert_resolved.as_millis() as u64,
            )?),
            metrics_listen: match raw.metrics_listen.as_deref() {
                None => d.metrics_listen,
                Some("") => None,
                Some(a) => Some(a.parse().map_err(|_| {
                    Error::config(file, "metrics_listen", format!("an address:port such as \"127.0.0.1:9101\", or \"\" to turn it off (got {a:?})"))
                })?),
            },
            alerts: match raw.alert {
                None => d.alerts,
                Some(list) => {
                    let rules = list.into_iter().enumerate().map(|(i, r)| alert_rule(file, i, r)).collect::<Result<Vec<_>>>()?;
                    for (i, r) in rules.iter().enumerate() {
                        if rules[..i].iter().any(|o| o.name == r.name) {
                            return Err(Error::config(file, format!("alert[{i}].name"), format!("a name no other rule uses (\"{}\" is taken)", r.name)));
                        }
                    }
                    rules
                }
            },
            start_mode: d.start_mode,
            track_port_count: raw.track_port_count.unwrap_or(d.track_port_count),
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
#[path = "config_tests.rs"]
mod tests;
