//! Prometheus metrics: the loop owns its counters (`Counters`) and two histograms; it hands
//! the endpoint a `Snapshot` of its state when a scrape asks (at most every 100 ms, see
//! `metrics_http`), and the endpoint renders that through prometheus-client's own OpenMetrics
//! encoder (`CONTENT_TYPE`). No global registry: a fresh registry is built per snapshot from
//! the loop's values. Adding a metric is a field in `Counters` and one call below.

use crate::counters::Counters;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

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

/// OpenMetrics 1.0, what prometheus-client's encoder writes (Prometheus negotiates it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The loop's state when a scrape asked for it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub counters: Counters,
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
    /// OpenMetrics text for a snapshot.
    pub fn render(&self, v: &Snapshot) -> String {
        let c = &v.counters;
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
        let reasons: Vec<(Labels, u64)> = c
            .key_errors
            .iter()
            .map(|(r, n)| (vec![("reason", r.clone())], *n))
            .collect();
        counter_family(
            &mut reg,
            "portsyncd_key_errors",
            "Error replies to single commands, by the reply's first word (each key is retried on its own)",
            &reasons,
        );
        counter(
            &mut reg,
            "portsyncd_log_lines_dropped",
            "Syslog lines dropped because the socket was full or unreachable",
            crate::syslog::dropped(),
        );
        counter(
            &mut reg,
            "portsyncd_syslog_reconnects",
            "Reconnects to the syslog socket after the receiver went away",
            crate::syslog::reconnects(),
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
        let mut out = String::with_capacity(8192);
        let _ = encode(&mut out, &reg);
        out
    }
}
