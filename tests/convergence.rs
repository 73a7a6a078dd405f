//! Issue #3: a property test over random interleavings of link events, lost netlink
//! messages, and Redis flushes that fail (after landing any prefix of their writes), run
//! through the real pure core (PortSync, Outbox, batch planning, Resync) against a model
//! STATE_DB. However the interleaving goes, once Redis answers again and a resync has run,
//! STATE_DB equals the kernel for every port.

use portsyncd::batch::{plan, StateWrite};
use portsyncd::event::{LinkEvent, LinkOp, PortState};
use portsyncd::outbox::{Flush, Outbox};
use portsyncd::port::PortSync;
use portsyncd::resync::{Resync, Step};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};

const NAMES: [&str; 5] = [
    "Ethernet0",
    "Ethernet4",
    "Ethernet8",
    "Ethernet12",
    "Ethernet16",
];
/// Ethernet16 has no APPL_DB row: it must never get a STATE_DB row.
fn in_appl_db(name: &str) -> bool {
    name != "Ethernet16"
}

#[derive(Debug, Clone)]
enum Op {
    /// Change port i's state (or create it if absent); `lost` drops the netlink message.
    Flip {
        i: usize,
        oper: bool,
        admin: bool,
        mtu: u32,
        lost: bool,
    },
    /// Delete port i if present.
    Del { i: usize, lost: bool },
    /// Start a flush if none is in flight.
    Start,
    /// The flush lands.
    Ok,
    /// The flush fails after its first `k` writes landed.
    Fail { k: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..NAMES.len(), any::<bool>(), any::<bool>(), prop_oneof![Just(1500u32), Just(9100u32)], prop::bool::weighted(0.15))
            .prop_map(|(i, oper, admin, mtu, lost)| Op::Flip { i, oper: oper && admin, admin, mtu, lost }),
        1 => (0..NAMES.len(), prop::bool::weighted(0.15)).prop_map(|(i, lost)| Op::Del { i, lost }),
        2 => Just(Op::Start),
        2 => Just(Op::Ok),
        1 => (0..12usize).prop_map(|k| Op::Fail { k }),
    ]
}

struct Sim {
    /// Kernel: port index → (ifindex, state).
    kernel: BTreeMap<usize, (u32, PortState)>,
    next_ifindex: u32,
    sync: PortSync,
    outbox: Outbox,
    inflight: Option<Flush>,
    db: BTreeMap<String, PortState>,
    lost_any: bool,
}

impl Sim {
    fn deliver(&mut self, op: LinkOp, ifindex: u32, name: &str, s: PortState) {
        let flags = u32::from(s.admin_up) | if s.oper_up { 0x40 } else { 0 };
        let ev = LinkEvent {
            op,
            ifindex,
            name: name.into(),
            flags,
            mtu: s.mtu,
            master: 0,
            kind: None,
            mac: Default::default(),
        };
        self.sync.on_link(&ev, self.outbox.pending_mut());
    }

    fn apply(&mut self, writes: &[StateWrite]) {
        for w in writes {
            match w {
                StateWrite::Del(n) => {
                    self.db.remove(*n);
                }
                StateWrite::Set(n, s) => {
                    self.db.insert((*n).to_owned(), *s);
                }
            }
        }
    }

    fn complete(&mut self, ok: bool, k: usize) {
        let Some(f) = self.inflight.take() else {
            return;
        };
        let writes = plan(&f.batch, in_appl_db);
        if ok {
            self.apply(&writes);
            for (n, op) in f.batch.iter() {
                if op.set.is_some() && in_appl_db(n) {
                    self.sync.on_written(n);
                }
            }
            self.outbox.succeeded();
        } else {
            self.apply(&writes[..k.min(writes.len())]);
            self.outbox.failed(f);
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Flip {
                i,
                oper,
                admin,
                mtu,
                lost,
            } => {
                let s = PortState {
                    oper_up: oper,
                    admin_up: admin,
                    mtu,
                };
                let ifindex = match self.kernel.get(&i) {
                    Some((ifx, _)) => *ifx,
                    None => {
                        self.next_ifindex += 1;
                        self.next_ifindex
                    }
                };
                self.kernel.insert(i, (ifindex, s));
                if lost {
                    self.lost_any = true;
                } else {
                    self.deliver(LinkOp::New, ifindex, NAMES[i], s);
                }
            }
            Op::Del { i, lost } => {
                if let Some((ifindex, s)) = self.kernel.remove(&i) {
                    if lost {
                        self.lost_any = true;
                    } else {
                        self.deliver(LinkOp::Del, ifindex, NAMES[i], s);
                    }
                }
            }
            Op::Start => {
                if self.inflight.is_none() {
                    self.inflight = self.outbox.take(3);
                }
            }
            Op::Ok => self.complete(true, 0),
            Op::Fail { k } => self.complete(false, k),
        }
    }

    /// What the daemon does after an overflow: dump, run every reply through the normal path,
    /// delete what vanished.
    fn resync(&mut self) {
        let mut r = Resync::default();
        assert!(r.request(0));
        let dump: Vec<(usize, u32, PortState)> = self
            .kernel
            .iter()
            .map(|(i, (ifx, s))| (*i, *ifx, *s))
            .collect();
        for (i, ifindex, s) in dump {
            r.on_newlink(ifindex);
            self.deliver(LinkOp::New, ifindex, NAMES[i], s);
        }
        let known: Vec<u32> = self.sync.known().collect();
        let Step::Finished { vanished } = r.on_done(0, false, known.into_iter()) else {
            panic!("clean dump")
        };
        for ifx in vanished {
            if let Some(name) = self.sync.vanish(ifx) {
                self.outbox.pending_mut().delete(&name);
            }
        }
    }

    fn drain(&mut self) {
        self.complete(true, 0);
        while let Some(f) = self.outbox.take(3) {
            self.inflight = Some(f);
            self.complete(true, 0);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn issue3_state_db_converges_to_the_kernel(ops in prop::collection::vec(op(), 1..80)) {
        let mut sim = Sim {
            kernel: BTreeMap::new(), next_ifindex: 100, sync: PortSync::new(NAMES.iter().map(|s| s.to_string())),
            outbox: Outbox::default(), inflight: None, db: BTreeMap::new(), lost_any: false,
        };
        for op in ops {
            sim.step(op);
        }
        sim.drain();
        if sim.lost_any {
            sim.resync();
            sim.drain();
        }
        let want: BTreeMap<String, PortState> = sim.kernel.iter()
            .filter(|(i, _)| in_appl_db(NAMES[**i]))
            .map(|(i, (_, s))| (NAMES[*i].to_string(), *s))
            .collect();
        prop_assert_eq!(&sim.db, &want);
        // Every port present in the kernel with an APPL_DB row was seen: nothing awaited.
        let awaited: HashSet<&str> = sim.sync.expected().collect();
        for (i, _) in sim.kernel.iter() {
            if in_appl_db(NAMES[*i]) { prop_assert!(!awaited.contains(NAMES[*i])); }
        }
    }
}
