//! Tests of the netlink decoder: datagram walking, the selective decoder against the full
//! parse, hostile bytes.
use super::*;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo};

/// The selective decoder agrees with netlink-packet-route's full parse on a real kernel
/// RTM_NEWLINK (captured from an ifb port on this kernel).
#[test]
fn selective_decode_matches_the_full_parse() {
    let bytes: &[u8] = include_bytes!("../benches/fixtures/newlink-ifb.bin");
    let mut out = Vec::new();
    decode_datagram(bytes, &mut out);
    let [NetlinkInput::Link { ev, dumped: false }] = &out[..] else {
        panic!("{out:?}")
    };
    let full = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).unwrap();
    let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) = full.payload else {
        panic!()
    };
    assert_eq!(ev.ifindex, m.header.index);
    assert_eq!(ev.flags, m.header.flags.bits());
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => assert_eq!(ev.name, n),
            LinkAttribute::Mtu(v) => assert_eq!(ev.mtu, v),
            LinkAttribute::Controller(v) => assert_eq!(ev.master, v),
            LinkAttribute::Address(a) => assert_eq!(ev.mac, Mac::new(&a).unwrap()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        assert_eq!(ev.kind.as_deref(), Some(k.to_string().as_str()));
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        (ev.name.as_str(), ev.mtu, ev.kind.as_deref()),
        ("Ethernet0", 9100, Some("ifb"))
    );
}

fn datagram(msgs: Vec<NetlinkMessage<RouteNetlinkMessage>>) -> Vec<u8> {
    let mut out = Vec::new();
    for mut m in msgs {
        m.finalize();
        let mut b = vec![0; m.buffer_len()];
        m.serialize(&mut b);
        out.extend_from_slice(&b);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    out
}

fn newlink(
    index: u32,
    name: &str,
    flags: LinkFlags,
    mtu: u32,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.flags = flags;
    link.attributes = vec![
        LinkAttribute::IfName(name.into()),
        LinkAttribute::Mtu(mtu),
        LinkAttribute::Address(vec![0xfa, 0x95, 0x1d, 0x2c, 0xd7, 0x4e]),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Team)]),
    ];
    NetlinkMessage::from(RouteNetlinkMessage::NewLink(link))
}

#[test]
fn walks_every_message_in_a_datagram() {
    let bytes = datagram(vec![
        newlink(10, "Ethernet0", LinkFlags::Up | LinkFlags::Running, 9100),
        newlink(11, "Ethernet4", LinkFlags::Up, 1500),
    ]);
    let mut out = Vec::new();
    decode_datagram(&bytes, &mut out);
    assert_eq!(out.len(), 2);
    let NetlinkInput::Link { ev, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (ev.ifindex, ev.name.as_str(), ev.mtu),
        (10, "Ethernet0", 9100)
    );
    assert!(ev.admin_up() && ev.oper_up());
    assert_eq!(ev.mac.to_string(), "fa:95:1d:2c:d7:4e");
    assert_eq!(ev.kind.as_deref(), Some("team"));
    let NetlinkInput::Link { ev, .. } = &out[1] else {
        panic!("{out:?}")
    };
    assert!(ev.admin_up() && !ev.oper_up());
}

#[test]
fn truncated_and_garbage_input_is_reported_not_panicked() {
    let bytes = datagram(vec![newlink(10, "Ethernet0", LinkFlags::Up, 9100)]);
    for cut in 0..bytes.len() {
        let mut out = Vec::new();
        decode_datagram(&bytes[..cut], &mut out);
        assert!(
            out.iter().all(|i| matches!(i, NetlinkInput::Malformed(_))),
            "{cut}: {out:?}"
        );
    }
    let mut out = Vec::new();
    decode_datagram(&[0xff; 40], &mut out);
    assert!(matches!(out[0], NetlinkInput::Malformed(_)));
}

/// The attribute walk: aligned steps, nested flag bits masked, a missing final pad tolerated,
/// and a bad length reported instead of read past.
#[test]
fn attribute_walk_table() {
    let ok: &[u8] = &[
        8, 0, 4, 0, 0xdc, 0x05, 0, 0, // IFLA_MTU 1500
        5, 0, 0x12, 0x80, 7, 0, 0, 0, // type 18 with NLA_F_NESTED, 1 byte + 3 pad
        6, 0, 3, 0, b'e', b'0', // last attribute without its 2 pad bytes
    ];
    let mut walk = Attrs::new(ok);
    let got: Vec<_> = (&mut walk).collect();
    assert_eq!(
        got,
        vec![
            (4, &[0xdc, 0x05, 0, 0][..]),
            (18, &[7][..]),
            (3, &b"e0"[..])
        ]
    );
    assert_eq!(walk.check(), Ok(()));
    for (bad, why) in [
        (
            &[8u8, 0, 4, 0, 1][..],
            "length 8 out of range (5 bytes left)",
        ),
        (&[2, 0, 4, 0][..], "length 2 out of range (4 bytes left)"),
        (&[4, 0, 1][..], "3 stray bytes after the last"),
    ] {
        let mut walk = Attrs::new(bad);
        assert_eq!((&mut walk).count(), 0, "{bad:?}");
        assert_eq!(walk.check(), Err(why.to_string()), "{bad:?}");
    }
    assert_eq!(Attrs::new(&[]).count(), 0);
}
