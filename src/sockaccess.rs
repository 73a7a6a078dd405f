//! Whether this process may open a unix socket by its file mode alone, and the one-line
//! explanation when it may not. The unit drops CAP_DAC_OVERRIDE, so a root daemon under
//! systemd is refused a socket that root in a shell opens (Debian's redis-server makes
//! `/var/run/redis/redis.sock` `redis:redis 0770`). The decision is pure (`decide`); reading
//! the socket's owner and our own credentials (`/proc/self/status`, `/etc/passwd`,
//! `/etc/group`) is at the edge.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Owner and permission bits of the socket file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// The credentials the kernel checks a `connect()` against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// CAP_DAC_OVERRIDE in the effective set: file modes do not apply.
    pub dac_override: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The mode lets these credentials write the socket.
    Granted,
    /// Only CAP_DAC_OVERRIDE gets this process in (true in a root shell, false in the unit).
    OnlyWithDacOverride,
    /// Refused.
    Denied,
}

/// Connecting to a unix socket needs write permission on it. The kernel uses the first class
/// that matches (owner, then group, then other), not the most generous one.
pub fn decide(owner: Owner, creds: &Creds) -> Access {
    let bit = if creds.uid == owner.uid {
        0o200
    } else if creds.gid == owner.gid || creds.groups.contains(&owner.gid) {
        0o020
    } else {
        0o002
    };
    if owner.mode & bit != 0 {
        Access::Granted
    } else if creds.dac_override {
        Access::OnlyWithDacOverride
    } else {
        Access::Denied
    }
}

/// What to tell the operator about a socket `creds` cannot open without CAP_DAC_OVERRIDE.
pub fn explain(socket: &Path, owner: Owner, creds: &Creds, names: &Names) -> String {
    let group = names.group(owner.gid);
    format!(
        "{} is {}:{} mode {:04o} and uid {} (groups {}) without CAP_DAC_OVERRIDE cannot write it; \
         give portsyncd the socket's group (`systemctl edit portsyncd`: [Service] \
         SupplementaryGroups={group}) or have Redis create the socket with a mode that admits it \
         (redis.conf unixsocketperm)",
        socket.display(),
        names.user(owner.uid),
        group,
        owner.mode & 0o7777,
        creds.uid,
        all_groups(creds)
            .iter()
            .map(|g| names.group(*g))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The primary group first, then the supplementary ones, each once.
fn all_groups(creds: &Creds) -> Vec<u32> {
    let mut all = vec![creds.gid];
    for g in &creds.groups {
        if !all.contains(g) {
            all.push(*g);
        }
    }
    all
}

/// The socket's owner and mode; `None` when it does not exist (or cannot be looked at).
pub fn owner_of(socket: &Path) -> Option<Owner> {
    let m = std::fs::metadata(socket).ok()?;
    Some(Owner {
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode(),
    })
}

/// This process's effective credentials, from `/proc/self/status`.
pub fn current() -> Creds {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_status(&text)
}

/// `Uid:`/`Gid:` (real, effective, …), `Groups:` and `CapEff:` (hex) of a status file.
pub fn parse_status(text: &str) -> Creds {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let effective = |name: &str| field(name).get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    let cap_eff = field("CapEff:")
        .first()
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0);
    const CAP_DAC_OVERRIDE: u64 = 1 << 1;
    Creds {
        uid: effective("Uid:"),
        gid: effective("Gid:"),
        groups: field("Groups:")
            .iter()
            .filter_map(|g| g.parse().ok())
            .collect(),
        dac_override: cap_eff & CAP_DAC_OVERRIDE != 0,
    }
}

/// User and group names, for messages (numbers when a name is not known).
#[derive(Debug, Default)]
pub struct Names {
    users: Vec<(u32, String)>,
    groups: Vec<(u32, String)>,
}

impl Names {
    pub fn load() -> Names {
        let read = |f: &str| parse_db(&std::fs::read_to_string(f).unwrap_or_default());
        Names {
            users: read("/etc/passwd"),
            groups: read("/etc/group"),
        }
    }

    pub fn user(&self, uid: u32) -> String {
        lookup(&self.users, uid)
    }

    pub fn group(&self, gid: u32) -> String {
        lookup(&self.groups, gid)
    }
}

fn lookup(db: &[(u32, String)], id: u32) -> String {
    db.iter()
        .find(|(i, _)| *i == id)
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| id.to_string())
}

/// `name:x:id:…` lines of /etc/passwd or /etc/group.
fn parse_db(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            Some((id, name.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(uid: u32, gid: u32, groups: &[u32], dac: bool) -> Creds {
        Creds {
            uid,
            gid,
            groups: groups.to_vec(),
            dac_override: dac,
        }
    }

    /// (socket owner uid, gid, mode; process creds) -> access
    #[test]
    fn decide_table() {
        use Access::*;
        const REDIS: u32 = 101;
        let sock = |mode| Owner {
            uid: REDIS,
            gid: REDIS,
            mode,
        };
        let cases = [
            // Debian's socket, root in a shell: only the capability gets it in.
            (sock(0o770), creds(0, 0, &[0], true), OnlyWithDacOverride),
            // The same socket, root under the unit (no CAP_DAC_OVERRIDE).
            (sock(0o770), creds(0, 0, &[0], false), Denied),
            // SupplementaryGroups=redis.
            (sock(0o770), creds(0, 0, &[0, REDIS], false), Granted),
            // Primary group matches.
            (sock(0o770), creds(65534, REDIS, &[], false), Granted),
            // World-writable socket.
            (sock(0o777), creds(65534, 65534, &[], false), Granted),
            // The owner class wins even when group and other would allow it.
            (sock(0o077), creds(REDIS, REDIS, &[], false), Denied),
            // Group member, group class read-only, other writable: still refused.
            (sock(0o706), creds(0, 0, &[REDIS], false), Denied),
            // Owner may write.
            (sock(0o700), creds(REDIS, 0, &[], false), Granted),
        ];
        for (owner, c, want) in cases {
            assert_eq!(decide(owner, &c), want, "{owner:?} {c:?}");
        }
    }

    #[test]
    fn status_file_gives_effective_ids_groups_and_dac_override() {
        let text = "Name:\tportsyncd\nUid:\t1000\t0\t0\t0\nGid:\t1000\t5\t5\t5\n\
                    Groups:\t5 101 \nCapEff:\t0000000000001000\n";
        assert_eq!(parse_status(text), creds(0, 5, &[5, 101], false));
        let root = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t0\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_status(root), creds(0, 0, &[0], true));
    }

    #[test]
    fn explanation_names_owner_mode_and_the_fix() {
        let names = Names {
            users: parse_db(
                "root:x:0:0::/root:/bin/sh\nredis:x:101:104::/var/lib/redis:/bin/false\n",
            ),
            groups: parse_db("root:x:0:\nredis:x:104:\n"),
        };
        let owner = Owner {
            uid: 101,
            gid: 104,
            mode: 0o140770,
        };
        let msg = explain(
            Path::new("/var/run/redis/redis.sock"),
            owner,
            &creds(0, 0, &[0], false),
            &names,
        );
        assert!(
            msg.starts_with(
                "/var/run/redis/redis.sock is redis:redis mode 0770 and uid 0 (groups root)"
            ),
            "{msg}"
        );
        assert!(msg.contains("SupplementaryGroups=redis"), "{msg}");
    }
}
