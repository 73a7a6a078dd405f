//! The one-shot requests on their own blocking socket, for start-up, the swss watch and the
//! health check: dump every link now (a consistent dump, repeated if the kernel flags it
//! interrupted; an undecodable link is reported, never fatal), and set a link's admin state
//! through RTM_SETLINK — the name never reaches a shell.

use super::{decode_datagram, dump_request};
use crate::event::{LinkEvent, LinkOp, NetlinkInput};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;

/// A blocking request socket for the start-up one-shots.
fn request_socket() -> io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    Ok(sock)
}

/// Every link the kernel has now, as `(ifindex, name)`, in kernel order (like `if_nameindex`);
/// links that cannot be decoded are left out.
pub fn list_links() -> io::Result<Vec<(u32, String)>> {
    Ok(dump_links()?
        .links
        .into_iter()
        .map(|ev| (ev.ifindex, ev.name))
        .collect())
}

/// A one-shot dump: the links, and what could not be decoded (`ifindex: why`, already
/// escaped for a log line). One undecodable link never fails the dump.
#[derive(Debug, Default)]
pub struct LinkList {
    pub links: Vec<LinkEvent>,
    pub undecodable: Vec<String>,
}

/// Every link the kernel has now, in kernel order, with its flags and MTU (a consistent dump:
/// repeated if the kernel flags it interrupted).
pub fn dump_links() -> io::Result<LinkList> {
    let sock = request_socket()?;
    loop {
        sock.send(&dump_request(1), 0)?;
        if let Some(list) = read_dump(&sock)? {
            return Ok(list);
        }
    }
}

/// The replies to one dump request; `None` when the kernel flagged the dump interrupted.
fn read_dump(sock: &Socket) -> io::Result<Option<LinkList>> {
    let mut list = LinkList::default();
    let mut out = Vec::new();
    loop {
        let (data, _) = sock.recv_from_full()?;
        decode_datagram(&data, &mut out);
        for input in out.drain(..) {
            match input {
                NetlinkInput::Link { ev, .. } if ev.op == LinkOp::New => list.links.push(ev),
                NetlinkInput::Undecodable { ifindex, why } => {
                    list.undecodable.push(format!("ifindex {ifindex}: {why}"))
                }
                NetlinkInput::DumpDone { interrupted } => return Ok((!interrupted).then_some(list)),
                NetlinkInput::Malformed(m) => return Err(io::Error::other(m)),
                _ => {}
            }
        }
    }
}

/// Clear IFF_UP on one link by ifindex and wait for the kernel's acknowledgement. The name
/// never reaches a shell.
pub fn set_admin_down(ifindex: u32) -> io::Result<()> {
    set_admin(ifindex, false)
}

/// Set or clear IFF_UP on one link (RTM_SETLINK with change mask IFF_UP); returns once the
/// kernel has acknowledged, i.e. once the change is made and its RTM_NEWLINK is sent.
pub fn set_admin(ifindex: u32, up: bool) -> io::Result<()> {
    let sock = request_socket()?;
    let mut link = LinkMessage::default();
    link.header.index = ifindex;
    link.header.flags = if up {
        LinkFlags::Up
    } else {
        LinkFlags::empty()
    };
    link.header.change_mask = LinkFlags::Up;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::SetLink(link)),
    );
    msg.finalize();
    let mut bytes = vec![0; msg.buffer_len()];
    msg.serialize(&mut bytes);
    sock.send(&bytes, 0)?;
    let (data, _) = sock.recv_from_full()?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data)
        .map_err(|e| io::Error::other(e.to_string()))?;
    match reply.payload {
        NetlinkPayload::Error(e) => match e.code {
            None => Ok(()),
            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
        },
        _ => Ok(()),
    }
}
