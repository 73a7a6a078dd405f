//! Our own small types at the netlink boundary. `netlink.rs` turns kernel messages into
//! these; nothing else in the crate sees netlink-packet-route types.

/// `IFF_UP`: the administrative state portsyncd reports as `admin_status`.
pub const IFF_UP: u32 = 0x1;
/// `IFF_RUNNING`: what portsyncd reports as `netdev_oper_status` (since SONiC 202106).
pub const IFF_RUNNING: u32 = 0x40;

/// RTM_NEWLINK or RTM_DELLINK, with the numbers the C++ log prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkOp {
    New,
    Del,
}

impl LinkOp {
    /// The rtnetlink message type number (16 / 17), as logged by `nlmsg type:`.
    pub fn number(self) -> u16 {
        match self {
            LinkOp::New => 16,
            LinkOp::Del => 17,
        }
    }
}

/// One link message, reduced to what port sync needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    pub op: LinkOp,
    pub ifindex: u32,
    /// IFLA_IFNAME. Empty when the kernel sent none (such messages never pass the name filter).
    pub name: String,
    /// `ifi_flags` as sent by the kernel.
    pub flags: u32,
    /// IFLA_MTU, 0 when absent (as in the C++ daemon).
    pub mtu: u32,
    /// IFLA_MASTER, 0 when absent.
    pub master: u32,
    /// IFLA_INFO_KIND, e.g. "team", "veth", "ifb".
    pub kind: Option<String>,
    /// IFLA_ADDRESS, empty when absent.
    pub mac: Mac,
}

impl LinkEvent {
    pub fn admin_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    pub fn oper_up(&self) -> bool {
        self.flags & IFF_RUNNING != 0
    }

    /// The state portsyncd writes for this message.
    pub fn port_state(&self) -> PortState {
        PortState {
            oper_up: self.oper_up(),
            admin_up: self.admin_up(),
            mtu: self.mtu,
        }
    }
}

/// A link-layer address (IFLA_ADDRESS, at most MAX_ADDR_LEN = 32 bytes), shown `aa:bb:…`.
/// Kept as bytes: it is only ever printed, in the `nlmsg` log line.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Mac {
    len: u8,
    bytes: [u8; 32],
}

impl Mac {
    /// The address, or `None` when it is longer than any kernel address.
    pub fn new(addr: &[u8]) -> Option<Mac> {
        let mut mac = Mac::default();
        mac.bytes.get_mut(..addr.len())?.copy_from_slice(addr);
        mac.len = addr.len() as u8;
        Some(mac)
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32 * 3];
        let mut n = 0;
        for (i, b) in self.bytes[..usize::from(self.len)].iter().enumerate() {
            if i > 0 {
                out[n] = b':';
                n += 1;
            }
            out[n] = HEX[usize::from(b >> 4)];
            out[n + 1] = HEX[usize::from(b & 0xf)];
            n += 2;
        }
        f.write_str(std::str::from_utf8(&out[..n]).unwrap_or_default())
    }
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The three kernel facts portsyncd mirrors into STATE_DB `PORT_TABLE|<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortState {
    pub oper_up: bool,
    pub admin_up: bool,
    pub mtu: u32,
}

impl PortState {
    pub fn oper_str(&self) -> &'static str {
        up_down(self.oper_up)
    }

    pub fn admin_str(&self) -> &'static str {
        up_down(self.admin_up)
    }
}

fn up_down(b: bool) -> &'static str {
    if b {
        "up"
    } else {
        "down"
    }
}

/// What one read of the netlink socket produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetlinkInput {
    /// A link message; `dumped` is true for replies to our RTM_GETLINK dump (sequence != 0).
    Link { ev: LinkEvent, dumped: bool },
    /// NLMSG_DONE of our dump request (`interrupted` if the kernel set NLM_F_DUMP_INTR).
    DumpDone { interrupted: bool },
    /// The socket reported ENOBUFS: messages were lost.
    Overrun,
    /// A message that could not be decoded (logged and counted, never fatal).
    Malformed(String),
    /// A link message whose header decoded but whose attributes did not (e.g. a name that is
    /// not UTF-8): logged with what could be read, counted, skipped — never fatal.
    Undecodable { ifindex: u32, why: String },
}

/// Port states shared by the unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::PortState;

    /// Admin up, oper up, MTU 9100.
    pub const UP: PortState = PortState {
        oper_up: true,
        admin_up: true,
        mtu: 9100,
    };
    /// Admin up, oper down.
    pub const OPER_DOWN: PortState = PortState {
        oper_up: false,
        ..UP
    };
    /// Admin down (so oper down).
    pub const ADMIN_DOWN: PortState = PortState {
        oper_up: false,
        admin_up: false,
        mtu: 9100,
    };
}
