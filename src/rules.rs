//! Alert rule definitions: what a rule watches (`Kind`), how loud it is (`Severity`), which
//! ports it covers, the defaults the package ships, and the `Alert`/`Effect` values the engine
//! emits. Data only; the lifecycle lives in `alerts.rs`.

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// More than `max` oper transitions of a port within `window_ms`.
    Flap { max: u32, window_ms: u64 },
    /// Admin up but oper down for longer than `after_ms`.
    OperDown { after_ms: u64 },
    /// Configured in CONFIG_DB `PORT` but never written (no netdev, or no APPL_DB row) after `after_ms`.
    MissingPort { after_ms: u64 },
    /// PortInitDone not sent `after_ms` after start.
    InitStall { after_ms: u64 },
    /// Kernel MTU differs from CONFIG_DB `mtu` for longer than `after_ms`.
    MtuMismatch { after_ms: u64 },
    /// More than `max` resyncs within `window_ms`.
    Resync { max: u32, window_ms: u64 },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Flap { .. } => "flap",
            Kind::OperDown { .. } => "oper_down",
            Kind::MissingPort { .. } => "missing_port",
            Kind::InitStall { .. } => "init_stall",
            Kind::MtuMismatch { .. } => "mtu_mismatch",
            Kind::Resync { .. } => "resync",
        }
    }

    pub(crate) fn per_port(&self) -> bool {
        !matches!(self, Kind::InitStall { .. } | Kind::Resync { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub kind: Kind,
    pub severity: Severity,
    /// A port name, a prefix ending in `*`, or `*`.
    pub ports: String,
    pub for_ms: u64,
}

impl Rule {
    pub fn matches(&self, port: &str) -> bool {
        match self.ports.strip_suffix('*') {
            Some(prefix) => port.starts_with(prefix),
            None => self.ports == port,
        }
    }
}

/// The rules the packaged configuration ships, used when the settings file has none. They are
/// quiet on a healthy switch (issue #12 item 6): `oper_down` is not among them (it fires for
/// every admin-up port without a cable: scope it to ports that must be up). `mtu_mismatch`
/// is, now that it compares with today's CONFIG_DB (#13): `config interface mtu` changes
/// CONFIG_DB and then, through portmgrd, the kernel within its 60 s.
pub fn default_rules() -> Vec<Rule> {
    let r = |name: &str, kind, severity, for_ms| Rule {
        name: name.into(),
        kind,
        severity,
        ports: "Ethernet*".into(),
        for_ms,
    };
    vec![
        r(
            "flap",
            Kind::Flap {
                max: 5,
                window_ms: 60_000,
            },
            Severity::Warning,
            0,
        ),
        r(
            "missing_port",
            Kind::MissingPort { after_ms: 120_000 },
            Severity::Critical,
            0,
        ),
        r(
            "init_stall",
            Kind::InitStall { after_ms: 180_000 },
            Severity::Critical,
            0,
        ),
        r(
            "mtu_mismatch",
            Kind::MtuMismatch { after_ms: 60_000 },
            Severity::Warning,
            0,
        ),
        r(
            "resync",
            Kind::Resync {
                max: 3,
                window_ms: 600_000,
            },
            Severity::Warning,
            0,
        ),
    ]
}

/// One alert instance: a rule and a port (`-` for rules about the whole daemon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub rule: String,
    pub kind: &'static str,
    pub port: String,
    pub severity: Severity,
    /// When the condition started to hold (caller's clock, ms).
    pub since_ms: u64,
    pub value: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Fire(Alert),
    Resolve(Alert),
}
