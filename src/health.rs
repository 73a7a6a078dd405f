//! `portsyncd health`, for cron and monit: is the daemon alive and its loop ticking (the
//! heartbeat row it writes to STATE_DB, which is also the writer lease: who holds it, and is
//! that process still there), is Redis reachable, was PortInitDone sent, and do the
//! kernel and STATE_DB agree (a drift audit)? One summary line, details with `-v`, `--json`
//! for machines. Exit codes follow the monitoring-plugin convention.

use crate::config::Settings;
use crate::dbconfig::DbConfig;
use crate::error::{Error, Result};
use crate::lease::{self, Identity};
use crate::netlink;
use crate::port::PREFIXES;
use crate::store::{self, HEALTH_TABLE};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub status: Status,
    pub summary: String,
    pub checks: Vec<Check>,
    /// Ports whose STATE_DB row disagrees with the kernel (persisting across two looks).
    pub drift: Vec<String>,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// Run the checks; `Err` means the check itself could not run (UNKNOWN).
pub async fn evaluate(settings: &Settings) -> Result<Report> {
    let dbs = DbConfig::load(&settings.db_config)?.sonic_dbs()?;
    let timeout = settings.redis_timeout.min(Duration::from_secs(2));
    let mut checks = Vec::new();
    let mut drift = Vec::new();
    let conns = async {
        let state = store::connect(&dbs.state, timeout).await?;
        let appl = store::connect(&dbs.appl, timeout).await?;
        Ok::<_, redis::RedisError>((state, appl))
    };
    let (mut state, mut appl) = match tokio::time::timeout(timeout * 2, conns).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return Ok(finish(
                vec![check(
                    "redis",
                    Status::Critical,
                    format!("unreachable at {}: {e}", dbs.state.socket.display()),
                )],
                drift,
            ))
        }
        Err(_) => {
            return Ok(finish(
                vec![check("redis", Status::Critical, "no answer in time")],
                drift,
            ))
        }
    };
    checks.push(check(
        "redis",
        Status::Ok,
        format!("reachable at {}", dbs.state.socket.display()),
    ));

    let hb: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(dbs.state.key(HEALTH_TABLE, "portsyncd"))
        .query_async(&mut state)
        .await
        .map_err(|e| Error::redis("reading the heartbeat", e))?;
    // The lease's clock is Redis's (`TIME`), so heartbeat ages are measured on it too.
    let now_ms = match redis::cmd("TIME")
        .query_async::<(u64, u64)>(&mut state)
        .await
    {
        Ok((s, us)) => s * 1000 + us / 1000,
        Err(e) => return Err(Error::redis("reading TIME", e)),
    };
    let num = |f: &str| hb.get(f).and_then(|v| v.parse::<u64>().ok());
    let field = |f: &str| hb.get(f).cloned().unwrap_or_default();
    let holder = Identity {
        pid: field("pid"),
        host: field("host"),
        boot_id: field("boot_id"),
        pidns: field("pidns"),
    };
    let here = Identity::current();
    let visible = here.shares_pids_with(&holder);
    let who = format!(
        "pid {} on {}",
        if holder.pid.is_empty() {
            "?"
        } else {
            &holder.pid
        },
        if holder.host.is_empty() {
            "?"
        } else {
            &holder.host
        }
    );
    match (
        hb.get("state").map(String::as_str),
        num("heartbeat_ms"),
        num("interval_ms"),
    ) {
        (None, _, _) => checks.push(check(
            "daemon",
            Status::Critical,
            "no heartbeat: portsyncd has not run against this Redis",
        )),
        (Some("stopped"), _, _) => checks.push(check(
            "daemon",
            Status::Critical,
            format!(
                "stopped (pid {} exited cleanly)",
                hb.get("pid").map(String::as_str).unwrap_or("?")
            ),
        )),
        (Some(_), Some(at), _) if visible && !lease::pid_alive(&holder.pid) => checks.push(check(
            "daemon",
            Status::Critical,
            format!(
                "{who} is gone (killed?), last heartbeat {:.1}s ago; the next start takes the lease over",
                now_ms.saturating_sub(at) as f64 / 1e3
            ),
        )),
        (Some(_), Some(at), Some(every)) if now_ms.saturating_sub(at) > every * 3 + 1000 => checks
            .push(check(
                "daemon",
                Status::Critical,
                format!(
                    "loop not ticking: {who}, last heartbeat {:.1}s ago (every {:.1}s)",
                    now_ms.saturating_sub(at) as f64 / 1e3,
                    every as f64 / 1e3
                ),
            )),
        (Some(_), Some(at), _) => checks.push(check(
            "daemon",
            Status::Ok,
            format!(
                "{who} {}, heartbeat {:.1}s ago, {} port(s){}",
                if hb.get("state").map(String::as_str) == Some("starting") {
                    "starting"
                } else {
                    "alive"
                },
                now_ms.saturating_sub(at) as f64 / 1e3,
                num("ports").unwrap_or(0),
                if visible {
                    ""
                } else {
                    " (writer lease held from another host or pid namespace: its pid is not checked from here)"
                }
            ),
        )),
        _ => checks.push(check(
            "daemon",
            Status::Critical,
            "heartbeat row is malformed",
        )),
    }
    match hb.get("init_done").map(String::as_str) {
        Some("true") => checks.push(check("port_init_done", Status::Ok, "PortInitDone sent")),
        _ => checks.push(check(
            "port_init_done",
            Status::Warning,
            format!(
                "PortInitDone not sent; {} configured port(s) awaited",
                num("awaiting").unwrap_or(0)
            ),
        )),
    }

    // Drift audit: look twice, report what disagrees both times (a change in flight is not drift).
    let first = audit(&mut state, &mut appl, &dbs).await?;
    if !first.is_empty() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = audit(&mut state, &mut appl, &dbs).await?;
        drift = second.into_iter().filter(|d| first.contains(d)).collect();
    }
    if drift.is_empty() {
        checks.push(check(
            "drift",
            Status::Ok,
            "STATE_DB agrees with the kernel",
        ));
    } else {
        checks.push(check(
            "drift",
            Status::Warning,
            format!("{} port(s) disagree with the kernel", drift.len()),
        ));
    }
    Ok(finish(checks, drift))
}

fn finish(checks: Vec<Check>, drift: Vec<String>) -> Report {
    let status = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Unknown);
    let worst: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == status && status != Status::Ok)
        .map(|c| c.detail.as_str())
        .collect();
    let summary = if worst.is_empty() {
        checks
            .iter()
            .find(|c| c.name == "daemon")
            .map(|c| c.detail.clone())
            .unwrap_or_default()
            + ", in sync, PortInitDone sent"
    } else {
        worst.join("; ")
    };
    Report {
        status,
        summary,
        checks,
        drift,
    }
}

/// One look: every `Ethernet*`/`PortChannel*` netdev with an APPL_DB row must have a matching
/// STATE_DB row; every STATE_DB row with `state` must have a netdev.
async fn audit(
    state: &mut redis::aio::ConnectionManager,
    appl: &mut redis::aio::ConnectionManager,
    dbs: &crate::dbconfig::SonicDbs,
) -> Result<Vec<String>> {
    let links = netlink::dump_links()
        .map_err(|e| Error::netlink("dumping links", e))?
        .links;
    let kernel: BTreeMap<String, crate::event::PortState> = links
        .into_iter()
        .filter(|l| {
            PREFIXES.iter().any(|p| l.name.starts_with(p)) && l.kind.as_deref() != Some("team")
        })
        .map(|l| (l.name.clone(), l.port_state()))
        .collect();
    let rerr = |e| Error::redis("drift audit", e);
    let rows: Vec<String> = redis::cmd("KEYS")
        .arg(dbs.state.key("PORT_TABLE", "*"))
        .query_async(state)
        .await
        .map_err(rerr)?;
    let prefix = dbs.state.key("PORT_TABLE", "");
    let mut names: Vec<String> = kernel.keys().cloned().collect();
    names.extend(rows.iter().map(|r| r[prefix.len()..].to_string()));
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let in_appl: bool = redis::cmd("EXISTS")
            .arg(dbs.appl.key("PORT_TABLE", &name))
            .query_async(appl)
            .await
            .map_err(rerr)?;
        let row: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(dbs.state.key("PORT_TABLE", &name))
            .query_async(state)
            .await
            .map_err(rerr)?;
        let has_state = row.contains_key("state");
        match kernel.get(&name) {
            Some(s) if in_appl => {
                let want = [
                    ("state", "ok"),
                    ("netdev_oper_status", s.oper_str()),
                    ("admin_status", s.admin_str()),
                ];
                let mtu_ok = row.get("mtu").map(String::as_str) == Some(s.mtu.to_string().as_str());
                if !want
                    .iter()
                    .all(|(f, v)| row.get(*f).map(String::as_str) == Some(*v))
                    || !mtu_ok
                {
                    out.push(format!(
                        "{name}: kernel oper {} admin {} mtu {}, STATE_DB oper {} admin {} mtu {}",
                        s.oper_str(),
                        s.admin_str(),
                        s.mtu,
                        row.get("netdev_oper_status")
                            .map(String::as_str)
                            .unwrap_or("-"),
                        row.get("admin_status").map(String::as_str).unwrap_or("-"),
                        row.get("mtu").map(String::as_str).unwrap_or("-")
                    ));
                }
            }
            None if has_state => out.push(format!("{name}: STATE_DB row but no netdev")),
            _ => {}
        }
    }
    Ok(out)
}

/// The subcommand: print and return the exit code.
pub fn run(settings: &Settings, verbose: bool, json: bool) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return unknown(json, &format!("starting the runtime: {e}")),
    };
    let report = match rt.block_on(evaluate(settings)) {
        Ok(r) => r,
        Err(e) => return unknown(json, &e.to_string()),
    };
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!("PORTSYNCD {:?} - {}", report.status, report.summary);
        if verbose {
            for c in &report.checks {
                println!(
                    "  {:<15} {:<8} {}",
                    c.name,
                    format!("{:?}", c.status).to_uppercase(),
                    c.detail
                );
            }
            for d in &report.drift {
                println!("  drift: {d}");
            }
        }
    }
    report.status.code()
}

fn unknown(json: bool, why: &str) -> u8 {
    if json {
        println!(
            "{}",
            serde_json::json!({"status": "UNKNOWN", "summary": why, "checks": [], "drift": []})
        );
    } else {
        println!("PORTSYNCD UNKNOWN - {why}");
    }
    Status::Unknown.code()
}
