//! One pending or firing alert instance as the engine keeps it, and the `Alert` it becomes
//! when an effect is emitted (pure).

use super::conditions::Cond;
use super::{Alert, Rule};

/// A pending or firing instance. It keeps what its condition said as raw numbers (`Said`),
/// not an `Alert`: the strings are built only when an effect is emitted, so a storm that
/// leaves an alert firing on every port keeps ≈ 32 bytes per instance, not an `Alert` with
/// five heap strings (issue #15).
#[derive(Debug)]
pub(super) struct Active {
    pub(super) since_ms: u64,
    pub(super) firing: bool,
    pub(super) said: Said,
}

/// What the condition said when the instance last started, stayed pending or fired.
#[derive(Debug)]
pub(super) enum Said {
    /// A per-port rule: the value and message are rebuilt from these numbers.
    Port(Cond),
    /// A rule about the whole daemon (one instance each): its value and message as built.
    Text(Box<(String, String)>),
}

/// The `Alert` for instance `a` of `rule` on `port`.
pub(super) fn alert_of(rule: &Rule, port: &str, a: &Active) -> Alert {
    let (value, message) = match &a.said {
        Said::Port(c) => c.describe(port),
        Said::Text(t) => (t.0.clone(), t.1.clone()),
    };
    Alert {
        rule: rule.name.clone(),
        kind: rule.kind.name(),
        port: port.to_owned(),
        severity: rule.severity,
        since_ms: a.since_ms,
        value,
        message,
    }
}
