//! Start-up's copy of CONFIG_DB `PORT|*` into APPL_DB `PORT_TABLE`, streamed chunk by chunk:
//! each chunk of `HGETALL` replies is turned into its ProducerStateTable sets and sent while
//! the next chunk is read, and is dropped once Redis has answered its sets. So start-up never
//! holds every port's fields at once (at 10,000 ports that was the process's high-water mark),
//! and our reading, converting and encoding overlap Redis's work. `PortConfigDone {count}` goes
//! last, once every port's set has been answered. Without `publish` (warm, reattach) only the
//! names and `mtu`s are kept. The per-chunk reduction (`reduce`) is pure.

use super::{key_error, FailedSets, Fvs, HashReply, Store};
use crate::keyretry::KeyError;
use crate::pst::{self, strip_special, PORT_TABLE};
use crate::requests::{send, Started, STREAM_CHUNK};
use redis::{RedisResult, Value};
use std::collections::VecDeque;

/// What the copy read and wrote.
#[derive(Debug, Default)]
pub struct ConfigCopy {
    /// The readable ports in KEYS order, each with its CONFIG_DB `mtu` (`cfgview::mtu_of`).
    pub ports: Vec<(String, Option<u32>)>,
    /// Keys whose `HGETALL` got an error reply: skipped (not published, not counted).
    pub unreadable: Vec<(String, KeyError)>,
    /// Sets that got an error reply (the loop retries them), in order.
    pub failed: FailedSets,
}

/// One chunk's replies reduced: the ports and their sets (field names stripped of `@…`).
#[derive(Debug, Default, PartialEq)]
pub struct Chunk {
    pub ports: Vec<(String, Option<u32>)>,
    pub sets: Vec<(String, Fvs)>,
    pub unreadable: Vec<(String, KeyError)>,
}

/// Pure: the `HGETALL` replies of `keys` (each `<prefix><name>`), in order.
pub fn reduce(prefix: usize, keys: &[String], replies: Vec<HashReply>, publish: bool) -> Chunk {
    let mut out = Chunk::default();
    for (key, reply) in keys.iter().zip(replies) {
        let name = key[prefix..].to_owned();
        match reply {
            HashReply::Fields(mut fvs) => {
                out.ports.push((name.clone(), crate::cfgview::mtu_of(&fvs)));
                if publish {
                    for (f, _) in &mut fvs {
                        let n = strip_special(f).len();
                        f.truncate(n);
                    }
                    out.sets.push((name, fvs));
                }
            }
            HashReply::Unreadable(e) => out.unreadable.push((name, e)),
        }
    }
    out
}

/// Sets sent and not yet answered, with the sets kept for their error replies.
type InFlight = (Vec<(String, Fvs)>, Started<Value>);

impl Store {
    /// Read CONFIG_DB `PORT|*` and, with `publish`, copy it into APPL_DB `PORT_TABLE` followed
    /// by `PortConfigDone {count}` (the readable ports). Two reads and two set pipelines in
    /// flight at most; the sets' order is KEYS order, as one pipeline would have it.
    pub async fn copy_config(&mut self, publish: bool) -> RedisResult<ConfigCopy> {
        let prefix = self.dbs.config.key("PORT", "");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut self.config)
            .await?;
        let mut out = ConfigCopy::default();
        let mut chunks = keys.chunks(STREAM_CHUNK);
        let mut reads = VecDeque::new();
        for chunk in chunks.by_ref().take(2) {
            reads.push_back((chunk, self.read(chunk).await));
        }
        let mut sets: VecDeque<InFlight> = VecDeque::new();
        while let Some((chunk, read)) = reads.pop_front() {
            let replies = read.finish().await?;
            if let Some(next) = chunks.next() {
                reads.push_back((next, self.read(next).await));
            }
            let c = reduce(prefix.len(), chunk, replies, publish);
            out.ports.extend(c.ports);
            out.unreadable.extend(c.unreadable);
            if c.sets.is_empty() {
                continue;
            }
            let sent = send(&self.appl, self.set_pipe(&c.sets)).await;
            sets.push_back((c.sets, sent));
            if sets.len() > 2 {
                let (s, r) = sets.pop_front().expect("three in flight");
                self.answered(s, r, &mut out.failed).await?;
            }
        }
        while let Some((s, r)) = sets.pop_front() {
            self.answered(s, r, &mut out.failed).await?;
        }
        if publish {
            let count = out.ports.len().to_string().into_bytes();
            let done = vec![("PortConfigDone".into(), vec![(b"count".to_vec(), count)])];
            let sent = send(&self.appl, self.set_pipe(&done)).await;
            self.answered(done, sent, &mut out.failed).await?;
        }
        Ok(out)
    }

    async fn read(&self, chunk: &[String]) -> Started<HashReply> {
        send(&self.config, super::replies::hgetall_pipe(chunk)).await
    }

    fn set_pipe(&self, sets: &[(String, Fvs)]) -> redis::Pipeline {
        let mut pipe = redis::Pipeline::with_capacity(sets.len());
        pipe.ignore_errors();
        for (key, fvs) in sets {
            pipe.add_command(pst::set_cmd(
                &self.set_sha,
                &self.dbs.appl,
                PORT_TABLE,
                key,
                fvs,
            ));
        }
        pipe
    }

    /// A chunk's set replies: NOSCRIPT ones sent again once the script is reloaded, the other
    /// error replies kept (with their sets) for the loop to retry.
    async fn answered(
        &mut self,
        sets: Vec<(String, Fvs)>,
        sent: Started<Value>,
        failed: &mut FailedSets,
    ) -> RedisResult<()> {
        let replies = sent.finish().await?;
        let noscript: Vec<usize> = (0..replies.len())
            .filter(|&i| matches!(&replies[i], Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript)))
            .collect();
        let mut again = Vec::new();
        if !noscript.is_empty() {
            self.load_scripts().await?;
            let resend: Vec<(String, Fvs)> = noscript.iter().map(|&i| sets[i].clone()).collect();
            again = self.producer_pipe(&resend).await?;
        }
        let mut again = noscript.into_iter().zip(again).peekable();
        for (i, ((key, fvs), mut v)) in sets.into_iter().zip(replies).enumerate() {
            if again.peek().is_some_and(|(j, _)| *j == i) {
                v = again.next().expect("peeked").1;
            }
            if let Value::ServerError(e) = v {
                failed.push((key, fvs, key_error(&e)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fv(f: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (f.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    fn unreadable() -> HashReply {
        HashReply::Unreadable(KeyError {
            reason: "WRONGTYPE".into(),
            detail: "x".into(),
        })
    }

    /// (keys, replies, publish) -> (ports with mtu, set keys with their field names, unreadable).
    #[test]
    #[allow(clippy::type_complexity)]
    fn issue15_a_chunk_is_reduced_to_its_ports_and_sets() {
        let keys: Vec<String> = ["PORT|Ethernet0", "PORT|Ethernet4", "PORT|Ethernet8"]
            .map(String::from)
            .into();
        let cases: Vec<(
            Vec<HashReply>,
            bool,
            Vec<(&str, Option<u32>)>,
            Vec<(&str, Vec<&str>)>,
            Vec<&str>,
        )> = vec![
            (
                vec![
                    HashReply::Fields(vec![fv("mtu", "9100"), fv("lanes@x", "0")]),
                    unreadable(),
                    HashReply::Fields(vec![]),
                ],
                true,
                vec![("Ethernet0", Some(9100)), ("Ethernet8", None)],
                vec![("Ethernet0", vec!["mtu", "lanes"]), ("Ethernet8", vec![])],
                vec!["Ethernet4"],
            ),
            (
                // Not publishing: the names and mtus only; the mtu is read before stripping.
                vec![
                    HashReply::Fields(vec![fv("mtu@a", "1500")]),
                    HashReply::Fields(vec![fv("mtu", "x")]),
                    unreadable(),
                ],
                false,
                vec![("Ethernet0", None), ("Ethernet4", None)],
                vec![],
                vec!["Ethernet8"],
            ),
        ];
        for (replies, publish, ports, sets, bad) in cases {
            let c = reduce(5, &keys, replies, publish);
            let got: Vec<(&str, Option<u32>)> =
                c.ports.iter().map(|(n, m)| (n.as_str(), *m)).collect();
            assert_eq!(got, ports);
            let got: Vec<(&str, Vec<&str>)> = c
                .sets
                .iter()
                .map(|(n, fvs)| {
                    let f = fvs.iter().map(|(f, _)| std::str::from_utf8(f).unwrap());
                    (n.as_str(), f.collect())
                })
                .collect();
            assert_eq!(got, sets);
            let got: Vec<&str> = c.unreadable.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(got, bad);
        }
    }
}
