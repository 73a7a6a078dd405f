//! The alert engine (pure): port transitions, resyncs and clock ticks in, alert effects out.
//! Each rule has a condition; a condition that holds becomes *pending*, and *firing* once it
//! has held for the rule's `for` duration (like a Prometheus rule); it *resolves* when the
//! condition clears. No duplicate firing. Time is milliseconds on a clock the caller owns.

use crate::event::PortState;
pub use crate::rules::{default_rules, Alert, Effect, Kind, Rule, Severity};
use instance::{alert_of, Active, Said};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// A CONFIG_DB change of one port, as `on_config` takes it: the new `mtu` (if a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigChange {
    Added(Option<u32>),
    Mtu(Option<u32>),
    Removed,
}

/// What the engine needs to know about the daemon on a tick.
pub struct Facts<'a> {
    pub now_ms: u64,
    /// Configured ports (in CONFIG_DB now) that have no netdev written yet: the awaited set,
    /// and ports added at run time whose netdev has not appeared.
    pub awaited: &'a [String],
    pub init_sent: bool,
}

#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<Rule>,
    start_ms: u64,
    /// Per rule (same index as `rules`): port → pending or firing instance.
    active: Vec<FxHashMap<String, Active>>,
    /// Oper transition times per port (pruned to the longest flap window).
    flaps: FxHashMap<String, VecDeque<u64>>,
    down_since: FxHashMap<String, u64>,
    mtu_off_since: FxHashMap<String, (u64, u32, u32)>,
    resyncs: VecDeque<u64>,
    /// CONFIG_DB `mtu` per configured port (kept live by `on_config`).
    config_mtu: FxHashMap<String, u32>,
    /// Ports added to CONFIG_DB while running: when (their missing-port timer starts then).
    configured_since: FxHashMap<String, u64>,
    /// The longest window of any rule (resync history is kept this long).
    max_window: u64,
    /// The longest flap window (flap history is kept this long; 0: no flap rule).
    flap_window: u64,
    /// The most flap times a port's history needs: the largest flap rule's `max` + 1. A rule
    /// holds once its window has more than `max`, and the newest `max + 1` times decide that,
    /// so older ones are dropped (a port flapping at 1,000/s kept 60,000 times for a 60 s
    /// window before; issue #15).
    flap_keep: usize,
    /// A table shrank since `take_shrunk` was last called.
    shrunk: bool,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, start_ms: u64, config_mtu: FxHashMap<String, u32>) -> Engine {
        let flap_window = rules
            .iter()
            .filter_map(|r| match r.kind {
                Kind::Flap { window_ms, .. } => Some(window_ms),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let flap_keep = rules
            .iter()
            .filter_map(|r| match r.kind {
                Kind::Flap { max, .. } => Some((max as usize).saturating_add(1)),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let max_window = rules
            .iter()
            .map(|r| match r.kind {
                Kind::Flap { window_ms, .. } | Kind::Resync { window_ms, .. } => window_ms,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        Engine {
            start_ms,
            active: (0..rules.len()).map(|_| FxHashMap::default()).collect(),
            rules,
            config_mtu,
            max_window,
            flap_window,
            flap_keep,
            ..Default::default()
        }
    }

    pub fn set_rules(&mut self, rules: Vec<Rule>) -> Vec<Effect> {
        // Alerts of rules that changed or went away resolve; the rest start over.
        let mut out = Vec::new();
        for (rule, m) in self.rules.iter().zip(&mut self.active) {
            out.extend(
                m.drain()
                    .filter(|(_, a)| a.firing)
                    .map(|(port, a)| Effect::Resolve(alert_of(rule, &port, &a))),
            );
        }
        let since = std::mem::take(&mut self.configured_since);
        *self = Engine::new(rules, self.start_ms, std::mem::take(&mut self.config_mtu));
        self.configured_since = since;
        out
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// A port's mirrored state changed (`None`: the netdev is gone).
    pub fn on_transition(
        &mut self,
        port: &str,
        old: Option<PortState>,
        new: Option<PortState>,
        now_ms: u64,
    ) -> Vec<Effect> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        if let (Some(o), Some(n)) = (old, new) {
            if o.oper_up != n.oper_up && self.flap_window > 0 {
                let (window, keep) = (self.flap_window, self.flap_keep);
                let q = match self.flaps.get_mut(port) {
                    Some(q) => q,
                    // Sized once (no regrowth leaving freed 32-byte chunks about the heap).
                    None => self
                        .flaps
                        .entry(port.to_owned())
                        .or_insert_with(|| VecDeque::with_capacity(keep.min(16))),
                };
                if q.len() >= keep {
                    q.pop_front();
                }
                q.push_back(now_ms);
                while q
                    .front()
                    .is_some_and(|t| now_ms.saturating_sub(*t) > window)
                {
                    q.pop_front();
                }
            }
        }
        match new {
            Some(n) if n.admin_up && !n.oper_up => {
                if !self.down_since.contains_key(port) {
                    self.down_since.insert(port.to_owned(), now_ms);
                }
            }
            _ => {
                self.down_since.remove(port);
            }
        }
        match (new, self.config_mtu.get(port)) {
            (Some(n), Some(&want)) if n.mtu != want => match self.mtu_off_since.get_mut(port) {
                Some(e) => e.1 = n.mtu,
                None => {
                    self.mtu_off_since
                        .insert(port.to_owned(), (now_ms, n.mtu, want));
                }
            },
            _ => {
                self.mtu_off_since.remove(port);
            }
        }
        self.evaluate_port(port, now_ms, &[], true)
    }

    /// CONFIG_DB changed for `port` (the live view, `cfgview.rs`): its `mtu` is now `want`
    /// (`None`: no number, or the port was removed). `current` is the port's mirrored state,
    /// if it has a netdev. A port added starts its missing-port timer now.
    pub fn on_config(
        &mut self,
        port: &str,
        change: ConfigChange,
        current: Option<PortState>,
        now_ms: u64,
    ) -> Vec<Effect> {
        let want = match change {
            ConfigChange::Added(w) => {
                self.configured_since.insert(port.to_owned(), now_ms);
                w
            }
            ConfigChange::Mtu(w) => w,
            ConfigChange::Removed => {
                self.configured_since.remove(port);
                None
            }
        };
        match want {
            Some(w) => self.config_mtu.insert(port.to_owned(), w),
            None => self.config_mtu.remove(port),
        };
        match (current, want) {
            (Some(n), Some(w)) if n.mtu != w => {
                let since = self.mtu_off_since.get(port).map_or(now_ms, |e| e.0);
                self.mtu_off_since
                    .insert(port.to_owned(), (since, n.mtu, w));
            }
            _ => {
                self.mtu_off_since.remove(port);
            }
        }
        if self.rules.is_empty() {
            return Vec::new();
        }
        self.evaluate_port(port, now_ms, &[], true)
    }

    /// Ports added to CONFIG_DB while running (missing-port candidates until their netdev
    /// appears).
    pub fn added_ports(&self) -> impl Iterator<Item = &str> {
        self.configured_since.keys().map(String::as_str)
    }

    /// A resync completed.
    pub fn on_resync(&mut self, now_ms: u64) {
        self.resyncs.push_back(now_ms);
    }

    /// Periodic evaluation of every rule.
    pub fn tick(&mut self, f: &Facts) -> Vec<Effect> {
        let now = f.now_ms;
        while self
            .resyncs
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > self.max_window)
        {
            self.resyncs.pop_front();
        }
        let flap_window = self.flap_window;
        self.flaps.retain(|_, q| {
            while q
                .front()
                .is_some_and(|t| now.saturating_sub(*t) > flap_window)
            {
                q.pop_front();
            }
            !q.is_empty()
        });
        let mut ports: Vec<String> = self
            .flaps
            .keys()
            .chain(self.down_since.keys())
            .chain(self.mtu_off_since.keys())
            .cloned()
            .collect();
        ports.extend(f.awaited.iter().cloned());
        ports.extend(
            self.active
                .iter()
                .flat_map(|m| m.keys())
                .filter(|p| *p != "-")
                .cloned(),
        );
        ports.sort();
        ports.dedup();
        let mut out = Vec::new();
        for p in &ports {
            out.extend(self.evaluate_port(p, now, f.awaited, false));
        }
        for i in 0..self.rules.len() {
            if !self.rules[i].kind.per_port() {
                let cond = self.global_condition(i, f);
                out.extend(self.step(i, "-", cond.map(|c| Said::Text(Box::new(c))), now));
            }
        }
        self.shrink();
        out
    }

    /// Give back the room a storm left in the engine's tables (`shrink.rs`); a table that
    /// shrank leaves free heap behind, so `take_shrunk` says the caller should trim the heap.
    fn shrink(&mut self) {
        let mut any = crate::shrink::map(&mut self.flaps);
        any |= crate::shrink::map(&mut self.down_since);
        any |= crate::shrink::map(&mut self.mtu_off_since);
        any |= crate::shrink::map(&mut self.configured_since);
        for m in &mut self.active {
            any |= crate::shrink::map(m);
        }
        self.shrunk |= any;
    }

    /// Whether a table shrank since the last call (then the heap is worth trimming).
    pub fn take_shrunk(&mut self) -> bool {
        std::mem::take(&mut self.shrunk)
    }

    /// The rule name of each firing alert, for metrics and status.
    pub fn firing(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().zip(&self.active).flat_map(|(r, m)| {
            m.values()
                .filter(|a| a.firing)
                .map(move |_| r.name.as_str())
        })
    }

    fn evaluate_port(
        &mut self,
        port: &str,
        now: u64,
        awaited: &[String],
        transition: bool,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            if !rule.kind.per_port() || !rule.matches(port) {
                continue;
            }
            // missing_port needs the awaited set, which only ticks carry.
            if transition && matches!(rule.kind, Kind::MissingPort { .. }) {
                continue;
            }
            let cond = self.port_condition(i, port, now, awaited);
            out.extend(self.step(i, port, cond.map(Said::Port), now));
        }
        out
    }

    /// The lifecycle: inactive → pending → firing → resolved. `said` is what the condition
    /// holds now (`None`: it does not hold).
    fn step(&mut self, i: usize, port: &str, said: Option<Said>, now: u64) -> Option<Effect> {
        let rule = &self.rules[i];
        let map = &mut self.active[i];
        let Some(said) = said else {
            let a = map.remove(port)?;
            return a.firing.then(|| Effect::Resolve(alert_of(rule, port, &a)));
        };
        // Firing or still pending: it keeps what it said when it fired or started.
        let a = match map.get_mut(port) {
            Some(a) if a.firing || now.saturating_sub(a.since_ms) < rule.for_ms => return None,
            Some(a) => {
                a.said = said;
                a
            }
            None => map.entry(port.to_owned()).or_insert(Active {
                since_ms: now,
                firing: false,
                said,
            }),
        };
        if now.saturating_sub(a.since_ms) >= rule.for_ms {
            a.firing = true;
            return Some(Effect::Fire(alert_of(rule, port, a)));
        }
        None
    }
}

mod conditions;
mod instance;

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
