//! Criterion benches for the per-event CPU path (issue #4): datagram decode → port state
//! machine → per-turn folding → STATE_DB command encoding, per event and per 1,024-event
//! batch. The input is a real RTM_NEWLINK for an ifb port captured from this kernel
//! (`fixtures/newlink-ifb.bin`, 1,492 bytes: every attribute the kernel sends is parsed).
//! Run: `cargo bench --bench event_path`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use portsyncd::batch::{plan, Batch, StateWrite};
use portsyncd::dbconfig::DbLocation;
use portsyncd::event::NetlinkInput;
use portsyncd::netlink::decode_datagram;
use portsyncd::port::PortSync;
use portsyncd::store::state_pipeline;
use std::hint::black_box;

const NEWLINK: &[u8] = include_bytes!("fixtures/newlink-ifb.bin");

/// The daemon's own STATE_DB encoding, packed as it goes on the wire.
fn encode(writes: &[StateWrite]) -> Vec<u8> {
    let db = DbLocation {
        name: "STATE_DB".into(),
        socket: "/s".into(),
        id: 6,
        separator: '|',
    };
    state_pipeline(&db, writes, &[]).get_packed_pipeline()
}

fn path(c: &mut Criterion) {
    let names: Vec<String> = (0..1024).map(|i| format!("Ethernet{}", i * 4)).collect();
    let mut g = c.benchmark_group("event_path");

    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_one_newlink", |b| {
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            out.clear();
            decode_datagram(black_box(NEWLINK), &mut out);
            black_box(&out);
        })
    });

    g.bench_function("one_event_decode_decide_fold_encode", |b| {
        let mut sync = PortSync::new(names.iter().cloned());
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            out.clear();
            decode_datagram(black_box(NEWLINK), &mut out);
            let mut batch = Batch::default();
            for i in out.drain(..) {
                if let NetlinkInput::Link { ev, .. } = i {
                    sync.on_link(&ev, &mut batch);
                }
            }
            black_box(encode(&plan(&batch, |_| true)))
        })
    });

    // The alert engine's share of the per-event path: the six default rules evaluated on an
    // oper transition of a port (nothing fires), against no rules at all.
    for (label, rules) in [
        (
            "alerts_default_rules_per_transition",
            portsyncd::alerts::default_rules(),
        ),
        ("alerts_no_rules_per_transition", Vec::new()),
    ] {
        g.bench_function(label, |b| {
            let mut engine = portsyncd::alerts::Engine::new(rules.clone(), 0, Default::default());
            let up = portsyncd::event::PortState {
                oper_up: true,
                admin_up: true,
                mtu: 9100,
            };
            let down = portsyncd::event::PortState {
                oper_up: false,
                ..up
            };
            let mut now = 0u64;
            b.iter(|| {
                now += 20_000; // one flip per 20 s per port: below the flap threshold
                let i = (now / 20_000 % 1024) as usize;
                let (o, n) = if (now / 20_000 / 1024).is_multiple_of(2) {
                    (up, down)
                } else {
                    (down, up)
                };
                black_box(engine.on_transition(&names[i], Some(o), Some(n), now))
            })
        });
    }

    g.throughput(Throughput::Elements(1024));
    g.bench_function("batch_1024_events", |b| {
        b.iter_batched(
            || PortSync::new(names.iter().cloned()),
            |mut sync| {
                let mut out = Vec::with_capacity(4);
                let mut batch = Batch::default();
                for (i, name) in names.iter().enumerate() {
                    out.clear();
                    decode_datagram(NEWLINK, &mut out);
                    if let Some(NetlinkInput::Link { mut ev, .. }) = out.pop() {
                        ev.name.clone_from(name);
                        ev.ifindex = 100 + i as u32;
                        sync.on_link(&ev, &mut batch);
                    }
                }
                black_box(encode(&plan(&batch, |_| true)))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, path);
criterion_main!(benches);
