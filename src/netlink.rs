//! The one place that knows netlink-packet-route: the NETLINK_ROUTE link socket (subscribe to
//! RTNLGRP_LINK, then dump, so no change falls in the gap), datagram decoding into our own
//! `NetlinkInput`, overflow detection, and the two one-shot requests start-up needs (list the
//! existing links, bring a stale netdev admin-down through RTM_SETLINK — never a shell; those
//! two live in `netlink/oneshot.rs`).

use crate::event::{LinkEvent, LinkOp, Mac, NetlinkInput};
use crate::sys;
use netlink_packet_core::{
    parse_string, parse_u32, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NLA_TYPE_MASK, NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkHeader, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::os::fd::AsFd;
use tokio::io::unix::AsyncFd;

/// RTNLGRP_LINK multicast group number.
const RTNLGRP_LINK: u32 = 1;
/// Largest datagram we expect; the kernel caps dump datagrams well below this.
const RECV_BUF: usize = 64 * 1024;

/// The daemon's link socket: events and dump replies arrive on it in kernel order.
pub struct LinkSocket {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
    dump_seq: u32,
}

impl LinkSocket {
    /// Open, size the receive buffer and join RTNLGRP_LINK. Returns the socket and the
    /// receive-buffer size the kernel reports.
    pub fn open(rcvbuf: usize) -> io::Result<(Self, usize)> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind(&SocketAddr::new(0, 0))?;
        sock.add_membership(RTNLGRP_LINK)?;
        sock.set_non_blocking(true)?;
        let got = sys::set_rcvbuf(sock.as_fd(), rcvbuf)?;
        Ok((
            LinkSocket {
                fd: sys::register_async(sock)?,
                buf: vec![0; RECV_BUF],
                dump_seq: 0,
            },
            got,
        ))
    }

    /// Ask for a full RTM_GETLINK dump; the replies arrive between the events.
    pub fn request_dump(&mut self) -> io::Result<()> {
        self.dump_seq = self.dump_seq.wrapping_add(1).max(1);
        let bytes = dump_request(self.dump_seq);
        self.fd.get_ref().send(&bytes, 0)?;
        Ok(())
    }

    /// The kernel's count of messages dropped on this socket.
    pub fn drops(&self) -> io::Result<u32> {
        sys::socket_drops(self.fd.get_ref().as_fd())
    }

    /// Wait until the socket is readable, then read up to `max_datagrams` datagrams without
    /// blocking and decode them into `out`. Returns the number of datagrams read. Cancel-safe:
    /// nothing is consumed before the readiness wait completes.
    pub async fn read_batch(
        &mut self,
        max_datagrams: usize,
        out: &mut Vec<NetlinkInput>,
    ) -> io::Result<usize> {
        let LinkSocket { fd, buf, .. } = self;
        let mut guard = fd.readable().await?;
        let mut n = 0;
        while n < max_datagrams {
            match guard.try_io(|s| s.get_ref().recv(&mut &mut buf[..], 0)) {
                Ok(Ok(len)) => {
                    n += 1;
                    decode_datagram(&buf[..len.min(buf.len())], out);
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    n += 1;
                    out.push(NetlinkInput::Overrun);
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => break,
            }
        }
        Ok(n)
    }
}

impl LinkSocket {
    /// Read what is queued right now, without waiting (at shutdown: link changes the kernel
    /// reported before SIGTERM are still written). Returns the datagrams read.
    pub fn read_queued(&mut self, max_datagrams: usize, out: &mut Vec<NetlinkInput>) -> usize {
        let LinkSocket { fd, buf, .. } = self;
        let mut n = 0;
        while n < max_datagrams {
            match fd.get_ref().recv(&mut &mut buf[..], 0) {
                Ok(len) => decode_datagram(&buf[..len.min(buf.len())], out),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    out.push(NetlinkInput::Overrun)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
            n += 1;
        }
        n
    }
}

fn dump_request(seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    msg.finalize();
    let mut bytes = vec![0; msg.buffer_len()];
    msg.serialize(&mut bytes);
    bytes
}

/// Walk every netlink message in one datagram.
pub fn decode_datagram(mut data: &[u8], out: &mut Vec<NetlinkInput>) {
    while !data.is_empty() {
        let len = match NetlinkBuffer::new_checked(data) {
            Ok(b) => b.length() as usize,
            Err(e) => {
                out.push(NetlinkInput::Malformed(format!("bad netlink header: {e}")));
                return;
            }
        };
        if len < 16 || len > data.len() {
            out.push(NetlinkInput::Malformed(format!(
                "netlink length {len} out of range"
            )));
            return;
        }
        out.extend(decode_message(&data[..len]));
        let step = (len + 3) & !3;
        data = data.get(step..).unwrap_or(&[]);
    }
}

// Kernel ABI numbers (linux/rtnetlink.h, linux/if_link.h); netlink-packet-route keeps its
// copies private.
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
/// ifinfomsg: family, pad, type, index, flags, change.
const LINK_HEADER_LEN: usize = 16;

/// Decode one netlink message. Link messages take a selective path: the link header through
/// netlink-packet-route, then only the five attributes portsyncd uses (name, MTU, master,
/// address, kind) through netlink-packet-core's attribute iterator. A kernel RTM_NEWLINK
/// carries ~1.5 KiB of attributes (statistics, per-family config); parsing all of them was
/// two thirds of the per-event CPU (benches/event_path.rs).
fn decode_message(bytes: &[u8]) -> Option<NetlinkInput> {
    let buf = match NetlinkBuffer::new_checked(bytes) {
        Ok(b) => b,
        Err(e) => return Some(NetlinkInput::Malformed(e.to_string())),
    };
    let flags = buf.flags();
    let dumped = buf.sequence_number() != 0;
    let payload = &bytes[16..(buf.length() as usize).min(bytes.len())];
    match buf.message_type() {
        t @ (RTM_NEWLINK | RTM_DELLINK) => {
            let op = if t == RTM_NEWLINK {
                LinkOp::New
            } else {
                LinkOp::Del
            };
            Some(match link_event(op, payload) {
                Ok(ev) => NetlinkInput::Link { ev, dumped },
                Err(LinkError::Header(e)) => NetlinkInput::Malformed(e),
                Err(LinkError::Attrs { ifindex, why }) => {
                    NetlinkInput::Undecodable { ifindex, why }
                }
            })
        }
        NLMSG_DONE => Some(NetlinkInput::DumpDone {
            interrupted: flags & NLM_F_DUMP_INTR != 0,
        }),
        NLMSG_OVERRUN => Some(NetlinkInput::Overrun),
        NLMSG_ERROR => match payload
            .get(..4)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        {
            Some(0) => None,
            Some(code) => Some(NetlinkInput::Malformed(format!(
                "netlink error message {code}"
            ))),
            None => Some(NetlinkInput::Malformed(
                "truncated netlink error message".into(),
            )),
        },
        _ => None,
    }
}

/// Why a link message could not be turned into a `LinkEvent`.
enum LinkError {
    /// Not even the ifinfomsg header.
    Header(String),
    /// The header is there (so the ifindex is known); an attribute is not.
    Attrs { ifindex: u32, why: String },
}

fn link_event(op: LinkOp, payload: &[u8]) -> Result<LinkEvent, LinkError> {
    let header =
        LinkHeader::parse(payload).map_err(|e| LinkError::Header(format!("link header: {e}")))?;
    let ifindex = header.index;
    link_attrs(op, header, payload).map_err(|why| LinkError::Attrs { ifindex, why })
}

/// The interface name: the bytes up to the first NUL, as UTF-8. A name that is not UTF-8
/// (the kernel allows any bytes but `/`, `:` and white space) comes back escaped (`\xNN`) for
/// the log line that reports it.
fn link_name(value: &[u8]) -> Result<String, String> {
    let bytes = value.split(|&b| b == 0).next().unwrap_or_default();
    match std::str::from_utf8(bytes) {
        Ok(name) => Ok(name.to_owned()),
        Err(_) => Err(format!("name is not UTF-8: \"{}\"", bytes.escape_ascii())),
    }
}

fn link_attrs(op: LinkOp, header: LinkHeader, payload: &[u8]) -> Result<LinkEvent, String> {
    let mut ev = LinkEvent {
        op,
        ifindex: header.index,
        name: String::new(),
        flags: header.flags.bits(),
        mtu: 0,
        master: 0,
        kind: None,
        mac: Mac::default(),
    };
    let attrs = payload.get(LINK_HEADER_LEN..).unwrap_or(&[]);
    let mut walk = Attrs::new(attrs);
    for (kind, value) in &mut walk {
        match kind {
            IFLA_IFNAME => ev.name = link_name(value)?,
            IFLA_MTU => ev.mtu = parse_u32(value).map_err(|e| format!("IFLA_MTU: {e}"))?,
            IFLA_MASTER => ev.master = parse_u32(value).map_err(|e| format!("IFLA_MASTER: {e}"))?,
            // Only logged: an impossible length (> MAX_ADDR_LEN) leaves it empty rather
            // than losing the event.
            IFLA_ADDRESS => ev.mac = Mac::new(value).unwrap_or_default(),
            IFLA_LINKINFO => {
                let mut info = Attrs::new(value);
                for (kind, value) in &mut info {
                    if kind == IFLA_INFO_KIND {
                        ev.kind =
                            Some(parse_string(value).map_err(|e| format!("IFLA_INFO_KIND: {e}"))?);
                    }
                }
                info.check().map_err(|e| format!("IFLA_LINKINFO: {e}"))?;
            }
            _ => {}
        }
    }
    walk.check().map_err(|e| format!("link attribute: {e}"))?;
    Ok(ev)
}

/// A netlink attribute list as `(type without the nested/byte-order flags, value)`. An
/// RTM_NEWLINK carries ~50 attributes of which five are read; stepping over the rest here
/// costs a few instructions each, where netlink-packet-core's checked iterator cost about a
/// quarter of the daemon's per-event instructions (callgrind, docs/PERFORMANCE.md). A
/// malformed header ends the walk; `check` then reports it.
struct Attrs<'a> {
    rest: &'a [u8],
    /// `(claimed length, bytes left)` of the header that ended the walk early.
    bad: Option<(usize, usize)>,
}

impl<'a> Attrs<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Attrs {
            rest: bytes,
            bad: None,
        }
    }

    /// Whether the walk reached the end cleanly.
    fn check(&self) -> Result<(), String> {
        match self.bad {
            None => Ok(()),
            Some((_, left)) if left < 4 => Err(format!("{left} stray bytes after the last")),
            Some((len, left)) => Err(format!("length {len} out of range ({left} bytes left)")),
        }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        let len = match rest {
            [] => return None,
            [l0, l1, _, _, ..] => usize::from(u16::from_ne_bytes([*l0, *l1])),
            _ => 0,
        };
        if len < 4 || len > rest.len() {
            self.bad = Some((len, rest.len()));
            self.rest = &[];
            return None;
        }
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        // Attributes start 4-byte aligned; the last one's padding may be missing.
        self.rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
        Some((kind, &rest[4..len]))
    }
}

mod oneshot;
pub use oneshot::{dump_links, list_links, set_admin, set_admin_down, LinkList};

#[cfg(test)]
#[path = "netlink_tests.rs"]
mod tests;
