//! The loop's input side: every decoded netlink message goes through the port state machine
//! into the outbox, transitions go to the alert engine, overflows start a resync, and the
//! PortInitDone check runs after each batch.

use super::Loop;
use crate::event::{LinkEvent, LinkOp, NetlinkInput, PortState};
use crate::port::Verdict;
use crate::resync::Step;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

impl Loop {
    pub(super) fn on_inputs(&mut self, inputs: &mut Vec<NetlinkInput>) {
        // One clock reading per batch: the alert engine's transitions in it share a time.
        let now = Instant::now();
        self.turn_ms = now.duration_since(self.started).as_millis() as u64;
        for input in inputs.drain(..) {
            match input {
                NetlinkInput::Link { ev, dumped } => {
                    self.counters.link_messages += 1;
                    match ev.op {
                        LinkOp::New => self.counters.newlinks += 1,
                        LinkOp::Del => self.counters.dellinks += 1,
                    }
                    self.last_event = Some(now);
                    if ev.op == LinkOp::New {
                        self.resync.on_newlink(ev.ifindex);
                        if dumped && self.resync_counts && self.sync.differs(&ev) {
                            self.counters.resync_corrected += 1;
                        }
                    }
                    self.on_link(&ev);
                }
                NetlinkInput::DumpDone { interrupted } => self.on_dump_done(interrupted),
                NetlinkInput::Overrun => {
                    self.counters.overruns += 1;
                    error!(target: "readData", "netlink reports out of memory on reading a netlink socket. High possibility of a lost message");
                    self.start_resync();
                }
                NetlinkInput::Malformed(m) => {
                    self.counters.malformed += 1;
                    warn!("undecodable netlink message: {m}");
                }
                NetlinkInput::Undecodable { ifindex, why } => {
                    self.counters.undecodable_links += 1;
                    warn!("skipping undecodable link message for ifindex {ifindex}: {why}");
                }
            }
        }
        if self.pending_since.is_none() && !self.outbox.pending_mut().is_empty() {
            self.pending_since = Some(Instant::now());
        }
        self.check_init();
    }

    /// A mirrored port changed, appeared, vanished or was renamed: tell the alert engine.
    /// `before` is the ifindex's (name, state) before the message; the common case — same
    /// name — allocates nothing.
    fn on_transition(&mut self, ev: &LinkEvent, before: Option<(Option<String>, PortState)>) {
        let now = self.turn_ms;
        let after = self
            .sync
            .state_of(ev.ifindex)
            .map(|(n, s)| (n == ev.name, s));
        let mut effects = Vec::new();
        match (before, after) {
            (Some((None, a)), Some((true, b))) => {
                if a != b {
                    effects = self.alerts.on_transition(&ev.name, Some(a), Some(b), now);
                }
            }
            (before, after) => {
                if let Some((old_name, a)) = before {
                    let name = old_name.unwrap_or_else(|| ev.name.clone());
                    effects.extend(self.alerts.on_transition(&name, Some(a), None, now));
                }
                if let Some((_, b)) = after {
                    effects.extend(self.alerts.on_transition(&ev.name, None, Some(b), now));
                }
            }
        }
        if !effects.is_empty() {
            self.apply_alerts(effects);
        }
    }

    pub(super) fn on_link(&mut self, ev: &LinkEvent) {
        // The name is cloned only when it differs from the message's (a rename).
        let before = self
            .sync
            .state_of(ev.ifindex)
            .map(|(n, s)| ((n != ev.name).then(|| n.to_owned()), s));
        let verdict = self.sync.on_link(ev, self.outbox.pending_mut());
        if before.is_some() || matches!(verdict, Verdict::Accepted { .. }) {
            self.on_transition(ev, before);
        }
        if verdict == Verdict::Filtered {
            self.counters.ignored_name += 1;
            return;
        }
        info!(target: "onMsg", "{}", NlmsgLine(ev));
        match verdict {
            Verdict::Filtered => {}
            Verdict::Team => self.counters.ignored_team += 1,
            Verdict::DelWithMaster => self.counters.ignored_master_del += 1,
            Verdict::OldInterface => {
                self.counters.ignored_old += 1;
                debug!(
                    target: "onMsg", "nlmsg type:{} Ignoring message for old interface {}({})",
                    ev.op.number(),
                    ev.name,
                    ev.ifindex
                );
            }
            Verdict::Accepted { renamed_from } => {
                self.counters.accepted += 1;
                if let Some(old) = renamed_from {
                    info!(
                        "{old} renamed to {} (ifindex {}): removing {old} from state db",
                        ev.name, ev.ifindex
                    );
                }
            }
        }
    }

    pub(super) fn start_resync(&mut self) {
        let drops = self.sock.drops().unwrap_or(0);
        if self.resync.request(drops) {
            self.resync_counts = true;
            if let Err(e) = self.sock.request_dump() {
                error!("resync: requesting the link dump failed: {e}");
            }
        }
    }

    pub(super) fn on_dump_done(&mut self, interrupted: bool) {
        let drops = self.sock.drops().unwrap_or(0);
        let known: Vec<u32> = self.sync.known().collect();
        match self.resync.on_done(drops, interrupted, known.into_iter()) {
            Step::Idle => {}
            Step::DumpAgain => {
                self.counters.redumps += 1;
                warn!("resync: messages were lost during the link dump, dumping again");
                if let Err(e) = self.sock.request_dump() {
                    error!("resync: requesting the link dump failed: {e}");
                }
            }
            Step::Finished { vanished } => {
                for ifindex in &vanished {
                    if let Some(name) = self.sync.vanish(*ifindex) {
                        self.outbox.pending_mut().delete(&name);
                    }
                }
                if std::mem::take(&mut self.resync_counts) {
                    self.counters.resyncs += 1;
                    let now = self.clock_ms();
                    self.alerts.on_resync(now);
                    self.counters.resync_corrected += vanished.len() as u64;
                    warn!(
                        "resync #{} complete: {} port update(s) corrected so far, {} vanished port(s) this time",
                        self.counters.resyncs,
                        self.counters.resync_corrected,
                        vanished.len()
                    );
                }
            }
        }
    }

    /// Checked after every netlink batch and every completed flush. PortInitDone goes out
    /// after the write that emptied the awaited set has landed, behind any writes pending.
    pub(super) fn check_init(&mut self) {
        if self.sync.init_due() && !self.outbox.init_queued() && !self.outbox.inflight() {
            self.outbox.want_init();
        }
    }
}

/// The C++ daemon's per-message NOTICE line, `nlmsg type:16 key:Ethernet0 admin:1 oper:1
/// addr:… ifindex:5 master:0[ type:ifb] flags:69699`. It is written for every message, so it
/// is assembled from string pieces and hand-formatted numbers rather than core::fmt's
/// general integer path.
struct NlmsgLine<'a>(&'a LinkEvent);

impl std::fmt::Display for NlmsgLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ev = self.0;
        let mut n = [0u8; 10];
        let bit = |b: bool| if b { "1" } else { "0" };
        f.write_str("nlmsg type:")?;
        f.write_str(decimal(&mut n, u32::from(ev.op.number())))?;
        f.write_str(" key:")?;
        f.write_str(&ev.name)?;
        f.write_str(" admin:")?;
        f.write_str(bit(ev.admin_up()))?;
        f.write_str(" oper:")?;
        f.write_str(bit(ev.oper_up()))?;
        write!(f, " addr:{}", ev.mac)?;
        f.write_str(" ifindex:")?;
        f.write_str(decimal(&mut n, ev.ifindex))?;
        f.write_str(" master:")?;
        f.write_str(decimal(&mut n, ev.master))?;
        if let Some(k) = &ev.kind {
            f.write_str(" type:")?;
            f.write_str(k)?;
        }
        f.write_str(" flags:")?;
        f.write_str(decimal(&mut n, ev.flags))
    }
}

/// `n` in decimal, written into the end of `buf`.
fn decimal(buf: &mut [u8; 10], mut n: u32) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Mac;

    #[test]
    fn nlmsg_line_has_the_cpp_shape() {
        let mut ev = LinkEvent {
            op: LinkOp::New,
            ifindex: 4_294_967_295,
            name: "Ethernet0".into(),
            flags: 69_699,
            mtu: 9100,
            master: 0,
            kind: Some("ifb".into()),
            mac: Mac::new(&[0xfa, 0x95, 0x1d, 0x2c, 0xd7, 0x4e]).unwrap(),
        };
        assert_eq!(
            NlmsgLine(&ev).to_string(),
            "nlmsg type:16 key:Ethernet0 admin:1 oper:1 addr:fa:95:1d:2c:d7:4e ifindex:4294967295 master:0 type:ifb flags:69699"
        );
        ev.op = LinkOp::Del;
        ev.kind = None;
        ev.flags = 0;
        ev.master = 7;
        ev.mac = Mac::default();
        assert_eq!(
            NlmsgLine(&ev).to_string(),
            "nlmsg type:17 key:Ethernet0 admin:0 oper:0 addr: ifindex:4294967295 master:7 flags:0"
        );
    }
}
