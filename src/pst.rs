//! The swss-common ProducerStateTable protocol, encoded as Redis commands (pure: builds
//! commands, sends nothing). A `set` is one atomic Lua script whose effects are, in order:
//! `SADD <T>_KEY_SET key`, the fields written into `_<T><sep>key` in argument order, and
//! `PUBLISH <T>_CHANNEL@<db> G` only if the SADD added the key (spec §3.2). The command sent is
//! the C++ one, argument for argument; the script text is our own (consumers depend on its
//! effects, not its SHA). Deliberate difference: the fields go in one multi-field `HSET` (per
//! 1,000 arguments) where swss-common runs one `HSET` per field. The hash, the key set and the
//! PUBLISH a consumer sees are the same; MONITOR shows one HSET line instead of one per field
//! and the hash gets one `hset` keyspace event per set. Redis ran the per-field form at ≈ 34 µs
//! per 7-field port, this one at ≈ 12–15 µs: it was most of a cold start.

use crate::dbconfig::DbLocation;

/// KEYS = [channel, key set, temp hash × n]; ARGV = ["G", key, f1, v1, …]. Fields go in
/// slices of 1,000 arguments (500 pairs): Lua's `unpack` is bounded by its C stack.
pub const SET_SCRIPT: &str = "\
local added = redis.call('SADD', KEYS[2], ARGV[2])
for i = 3, #ARGV, 1000 do
    redis.call('HSET', KEYS[3], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if added > 0 then
    redis.call('PUBLISH', KEYS[1], ARGV[1])
end
";

/// The table portsyncd produces into.
pub const PORT_TABLE: &str = "PORT_TABLE";

/// Build `EVALSHA <sha> <n+2> <T>_CHANNEL@<id> <T>_KEY_SET _<T><sep><key>×n G <key> f1 v1 …`.
pub fn set_cmd(
    sha: &str,
    db: &DbLocation,
    table: &str,
    key: &str,
    fvs: &[(Vec<u8>, Vec<u8>)],
) -> redis::Cmd {
    // Sized up front: at start-up this runs once per port, and growing the buffers arg by
    // arg was a sixth of start-up's instructions (callgrind).
    let temp_len = 1 + table.len() + 1 + key.len();
    let data: usize = fvs.iter().map(|(f, v)| f.len() + v.len()).sum();
    let size = 7 + sha.len() + 2 * table.len() + 24 + fvs.len() * temp_len + 1 + key.len() + data;
    let mut cmd = redis::Cmd::with_capacity(6 + 3 * fvs.len() + 1, size);
    let mut temp = String::with_capacity(temp_len);
    temp.push('_');
    temp.push_str(table);
    temp.push(db.separator);
    temp.push_str(key);
    cmd.arg("EVALSHA")
        .arg(sha)
        .arg(fvs.len() + 2)
        .arg(format!("{table}_CHANNEL@{}", db.id))
        .arg(format!("{table}_KEY_SET"));
    for _ in fvs {
        cmd.arg(&temp);
    }
    cmd.arg("G").arg(key);
    for (f, v) in fvs {
        cmd.arg(f).arg(v);
    }
    cmd
}

/// `SCRIPT LOAD` for the set script.
pub fn load_cmd() -> redis::Cmd {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("LOAD").arg(SET_SCRIPT);
    cmd
}

/// swss-common's `stripSpecialSym`: a field name loses everything from its first `@`.
pub fn strip_special(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == b'@') {
        Some(i) => &field[..i],
        None => field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn appl() -> DbLocation {
        DbLocation {
            name: "APPL_DB".into(),
            socket: PathBuf::from("/s"),
            id: 0,
            separator: ':',
        }
    }

    fn args(cmd: &redis::Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<other>".into(),
            })
            .collect()
    }

    /// The exact command of spec §3.2's example.
    #[test]
    fn port_init_done_matches_the_cpp_command() {
        let cmd = set_cmd(
            "SHA",
            &appl(),
            PORT_TABLE,
            "PortInitDone",
            &[(b"lanes".to_vec(), b"0".to_vec())],
        );
        assert_eq!(
            args(&cmd),
            "EVALSHA SHA 3 PORT_TABLE_CHANNEL@0 PORT_TABLE_KEY_SET _PORT_TABLE:PortInitDone G PortInitDone lanes 0"
                .split(' ')
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn zero_fields_is_sadd_and_publish_only() {
        let cmd = set_cmd("SHA", &appl(), PORT_TABLE, "X", &[]);
        assert_eq!(
            args(&cmd),
            [
                "EVALSHA",
                "SHA",
                "2",
                "PORT_TABLE_CHANNEL@0",
                "PORT_TABLE_KEY_SET",
                "G",
                "X"
            ]
        );
    }

    #[test]
    fn strip_special_symbol() {
        assert_eq!(strip_special(b"foo@"), b"foo");
        assert_eq!(strip_special(b"lanes@bar"), b"lanes");
        assert_eq!(strip_special(b"speed"), b"speed");
        assert_eq!(strip_special(b"@"), b"");
    }
}
