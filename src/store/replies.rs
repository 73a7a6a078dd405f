//! The CONFIG_DB `PORT|*` reads' replies, converted one `HGETALL` at a time as each chunk
//! arrives (so a read of 10,000 ports never holds every raw reply at once): the fields or why a
//! key could not be read (start-up), or only the `mtu` (the periodic re-read).

use super::{key_error, Fvs};
use crate::keyretry::KeyError;
use redis::Value;

/// `HGETALL` of every key in `chunk`, error replies kept in place (one per key).
pub(super) fn hgetall_pipe(chunk: &[String]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for k in chunk {
        pipe.cmd("HGETALL").arg(k);
    }
    pipe
}

/// One `HGETALL` reply, converted as its chunk arrives: the fields in reply order, or why the
/// key could not be read (an error reply such as WRONGTYPE, or a reply that is not a hash).
#[derive(Debug, PartialEq)]
pub enum HashReply {
    Fields(Fvs),
    Unreadable(KeyError),
}

impl redis::FromRedisValue for HashReply {
    fn from_redis_value(v: Value) -> Result<Self, redis::ParsingError> {
        Ok(match v {
            Value::ServerError(e) => HashReply::Unreadable(key_error(&e)),
            v => match redis::from_redis_value::<Fvs>(v) {
                Ok(fvs) => HashReply::Fields(fvs),
                Err(e) => HashReply::Unreadable(KeyError {
                    reason: "UNEXPECTED".into(),
                    detail: e.to_string(),
                }),
            },
        })
    }
}

/// One `HGETALL PORT|<name>` reply reduced to its `mtu` (`cfgview::mtu_of`): `None` for an
/// error reply or a reply that is not a hash (the key is left out, as start-up reports
/// it unreadable).
#[derive(Debug, PartialEq)]
pub struct MtuReply(pub Option<Option<u32>>);

impl redis::FromRedisValue for MtuReply {
    fn from_redis_value(v: Value) -> Result<Self, redis::ParsingError> {
        Ok(MtuReply(match v {
            Value::ServerError(_) => None,
            v => redis::from_redis_value::<Fvs>(v)
                .ok()
                .map(|fvs| crate::cfgview::mtu_of(&fvs)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::FromRedisValue;

    /// (RESP reply of one HGETALL, the fields or the unreadable reason, the mtu the re-read
    /// keeps).
    #[allow(clippy::type_complexity)]
    const CASES: &[(&[u8], Result<&[(&str, &str)], &str>, Option<Option<u32>>)] = &[
        (
            b"*4\r\n$5\r\nspeed\r\n$6\r\n100000\r\n$3\r\nmtu\r\n$4\r\n9100\r\n",
            Ok(&[("speed", "100000"), ("mtu", "9100")]),
            Some(Some(9100)),
        ),
        (
            b"*2\r\n$5\r\nlanes\r\n$1\r\n0\r\n",
            Ok(&[("lanes", "0")]),
            Some(None),
        ),
        (
            b"*2\r\n$3\r\nmtu\r\n$2\r\nxx\r\n",
            Ok(&[("mtu", "xx")]),
            Some(None),
        ),
        // A key gone between KEYS and HGETALL: no fields, a port without an mtu.
        (b"*0\r\n", Ok(&[]), Some(None)),
        (
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            Err("WRONGTYPE"),
            None,
        ),
        (b":7\r\n", Err("UNEXPECTED"), None),
    ];

    #[test]
    fn issue15_hgetall_replies_are_reduced_as_they_arrive() {
        for (resp, fields, mtu) in CASES {
            let v = redis::parse_redis_value(resp).unwrap();
            match (HashReply::from_redis_value(v.clone()).unwrap(), fields) {
                (HashReply::Fields(got), Ok(want)) => {
                    let want: Fvs = want
                        .iter()
                        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                        .collect();
                    assert_eq!(got, want, "{resp:?}");
                }
                (HashReply::Unreadable(e), Err(reason)) => assert_eq!(e.reason, *reason),
                (got, want) => panic!("{resp:?}: {got:?}, want {want:?}"),
            }
            assert_eq!(
                MtuReply::from_redis_value(v).unwrap(),
                MtuReply(*mtu),
                "{resp:?}"
            );
        }
    }
}
