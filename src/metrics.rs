//! Prometheus metrics: the loop owns its counters (`Counters`) and two histograms; each scrape
//! renders them through prometheus-client into the text format. No global registry: a fresh
//! registry is built per scrape from the loop's values. The endpoint is a minimal HTTP/1.1
//! responder for `GET /metrics` on the configured address (loopback by default); anything else
//! gets 404. Rendering happens in the loop; the socket I/O runs in its own task.

use crate::counters::Counters;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Labels = Vec<(&'static str, String)>;

/// Histograms observed by the loop.
#[derive(Clone)]
pub struct Metrics {
    /// Ports per Redis flush.
    pub flush_ports: Histogram,
    /// From the oldest netlink message in a flush to the flush's completion.
    pub event_to_redis: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            flush_ports: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            event_to_redis: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
        }
    }
}

/// The loop's state at scrape time.
pub struct View<'a> {
    pub counters: &'a Counters,
    /// (admin up, oper up) → number of ports.
    pub ports: [((bool, bool), usize); 4],
    pub awaited: usize,
    /// Ports with a write waiting for Redis (bounded by the number of ports).
    pub pending: usize,
    pub init_sent: bool,
    /// Every configured rule with its severity and number of firing alerts (0 included, so
    /// the series exist before anything fires).
    pub alerts: Vec<(String, &'static str, i64)>,
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn counter_family(reg: &mut Registry, name: &str, help: &str, rows: &[(Labels, u64)]) {
    let f = Family::<Labels, Counter>::default();
    for (l, v) in rows {
        f.get_or_create(l).inc_by(*v);
    }
    reg.register(name, help, f);
}

fn l(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

impl Metrics {
    /// Prometheus text for the current state.
    pub fn render(&self, v: &View) -> String {
        let c = v.counters;
        let mut reg = Registry::default();
        reg.register(
            "portsyncd_build",
            "Build information",
            Info::new(l(&[("version", env!("CARGO_PKG_VERSION"))])),
        );
        counter_family(
            &mut reg,
            "portsyncd_netlink_messages",
            "Netlink link messages received, by type",
            &[
                (l(&[("type", "newlink")]), c.newlinks),
                (l(&[("type", "dellink")]), c.dellinks),
            ],
        );
        counter(
            &mut reg,
            "portsyncd_netlink_malformed",
            "Netlink messages that could not be decoded",
            c.malformed,
        );
        counter(
            &mut reg,
            "portsyncd_netlink_undecodable_links",
            "Link messages skipped because they could not be decoded (e.g. a non-UTF-8 name)",
            c.undecodable_links,
        );
        counter(
            &mut reg,
            "portsyncd_swss_restarts",
            "swss cold restarts followed: PortConfigDone vanished and was published again",
            c.swss_restarts,
        );
        counter(
            &mut reg,
            "portsyncd_netlink_overruns",
            "ENOBUFS reports (messages lost in the kernel)",
            c.overruns,
        );
        counter(
            &mut reg,
            "portsyncd_events_accepted",
            "Link messages acted on",
            c.accepted,
        );
        counter_family(
            &mut reg,
            "portsyncd_events_ignored",
            "Link messages ignored, by reason",
            &[
                (l(&[("reason", "name")]), c.ignored_name),
                (l(&[("reason", "team")]), c.ignored_team),
                (
                    l(&[("reason", "dellink_with_master")]),
                    c.ignored_master_del,
                ),
                (l(&[("reason", "old_interface")]), c.ignored_old),
            ],
        );
        counter(
            &mut reg,
            "portsyncd_resyncs",
            "Completed resyncs after an overflow or a Redis outage",
            c.resyncs,
        );
        counter(
            &mut reg,
            "portsyncd_resync_redumps",
            "Extra dumps because messages were lost during a resync",
            c.redumps,
        );
        counter(
            &mut reg,
            "portsyncd_resync_corrected_ports",
            "Port rows a resync changed",
            c.resync_corrected,
        );
        counter(
            &mut reg,
            "portsyncd_redis_flushes",
            "Batches sent to Redis",
            c.flushes,
        );
        counter(
            &mut reg,
            "portsyncd_redis_errors",
            "Failed Redis flushes (each is retried)",
            c.flush_errors,
        );
        counter(
            &mut reg,
            "portsyncd_redis_reconnects",
            "Recoveries after Redis failures",
            c.redis_recoveries,
        );
        counter(
            &mut reg,
            "portsyncd_redis_commands",
            "Redis commands sent by flushes",
            c.redis_commands,
        );
        counter_family(
            &mut reg,
            "portsyncd_state_db_writes",
            "STATE_DB PORT_TABLE writes, by command",
            &[
                (l(&[("op", "hset")]), c.state_sets),
                (l(&[("op", "del")]), c.state_dels),
            ],
        );
        counter(
            &mut reg,
            "portsyncd_gate_misses",
            "Port updates dropped because APPL_DB had no PORT_TABLE row",
            c.gate_misses,
        );
        reg.register(
            "portsyncd_flush_ports",
            "Ports per Redis flush",
            self.flush_ports.clone(),
        );
        reg.register(
            "portsyncd_event_to_redis_seconds",
            "Oldest netlink message in a flush to the flush's completion",
            self.event_to_redis.clone(),
        );
        let ports = Family::<Labels, Gauge>::default();
        for ((admin, oper), n) in v.ports {
            let ud = |b| if b { "up" } else { "down" };
            ports
                .get_or_create(&l(&[("admin", ud(admin)), ("oper", ud(oper))]))
                .set(n as i64);
        }
        reg.register(
            "portsyncd_ports",
            "Mirrored ports, by kernel admin and oper state",
            ports,
        );
        let g: Gauge = Gauge::default();
        g.set(v.awaited as i64);
        reg.register(
            "portsyncd_ports_awaited",
            "Configured ports not yet seen (PortInitDone waits for them)",
            g,
        );
        let g: Gauge = Gauge::default();
        g.set(i64::from(v.init_sent));
        reg.register(
            "portsyncd_port_init_done",
            "1 once PortInitDone was sent",
            g,
        );
        let g: Gauge = Gauge::default();
        g.set(v.pending as i64);
        reg.register(
            "portsyncd_pending_ports",
            "Ports with a write waiting for Redis (at most one entry per port)",
            g,
        );
        let alerts = Family::<Labels, Gauge>::default();
        for (rule, sev, n) in &v.alerts {
            alerts
                .get_or_create(&l(&[("rule", rule), ("severity", sev)]))
                .set(*n);
        }
        reg.register(
            "portsyncd_alerts_firing",
            "Firing alerts, by rule and severity",
            alerts,
        );
        let mut out = String::new();
        let _ = encode(&mut out, &reg);
        classic_text(&out)
    }
}

/// prometheus-client writes OpenMetrics; Prometheus' classic text format (what `promtool check
/// metrics` and older scrapers read) names a counter's HELP/TYPE after its `_total` samples,
/// has no `info` type (a gauge `_info` instead) and no `# EOF`/`# UNIT` lines.
fn classic_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    let mut types = std::collections::HashMap::new();
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, ty)) = rest.split_once(' ') {
                types.insert(name.to_string(), ty.to_string());
            }
        }
    }
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("HELP", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("TYPE", r)));
        match meta {
            Some((kw, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let (name, tail) = match types.get(name).map(String::as_str) {
                    Some("counter") => (format!("{name}_total"), tail),
                    Some("info") => (
                        format!("{name}_info"),
                        if kw == "TYPE" { "gauge" } else { tail },
                    ),
                    _ => (name.to_string(), tail),
                };
                out.push_str(&format!("# {kw} {name} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Answer one connection with `body` for `GET /metrics`, 404 otherwise.
pub async fn respond(mut stream: tokio::net::TcpStream, body: String) {
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    let read = async {
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .is_err()
    {
        return;
    }
    let line = req.split(|b| *b == b'\n').next().unwrap_or_default();
    let ok = line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?");
    let (status, ctype, body) = if ok {
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
    } else {
        (
            "404 Not Found",
            "text/plain",
            "only GET /metrics is served\n".to_string(),
        )
    };
    let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
