//! Per-key retry bookkeeping (pure): when Redis answers one command of a flush with an error
//! reply (WRONGTYPE, OOM, …), only that key is retried, on its own capped, jittered backoff,
//! and its error is reported at most once a minute per key (plus a global line budget), not
//! once per retry. No payloads here (the outbox keeps those), no clock (callers pass
//! milliseconds), no I/O.

use rustc_hash::FxHashMap;

/// First retry of a failing key after this long; doubled per failure up to `MAX_MS`.
pub const MIN_MS: u64 = 100;
pub const MAX_MS: u64 = 2_000;
/// A key that keeps failing is reported again after this long.
pub const LOG_EVERY_MS: u64 = 60_000;
/// At most this many key-error lines per `LOG_EVERY_MS` over all keys.
pub const LOG_BUDGET: u32 = 32;

/// Which command failed: a STATE_DB port row, one of our own STATE_DB rows (full key), or an
/// APPL_DB ProducerStateTable set (`PortInitDone` included).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyId {
    State(String),
    Row(String),
    Appl(String),
}

/// An error reply: its first word (`WRONGTYPE`, `OOM`, `ERR` …) and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub reason: String,
    pub detail: String,
}

/// What the loop should report about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The key failed (again). `log` says whether this failure gets a line; `suppressed` is
    /// how many of its failures since its last line got none.
    Failed {
        key: KeyId,
        error: KeyError,
        attempt: u32,
        retry_in_ms: u64,
        log: bool,
        suppressed: u64,
    },
    /// A key that had failed was written.
    Healed { key: KeyId, attempts: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    attempts: u32,
    due_ms: u64,
    /// When its last line was written (None: never).
    logged_ms: Option<u64>,
    suppressed: u64,
}

/// Failing keys, each with its attempt count and when it may go again.
#[derive(Debug, Default)]
pub struct KeyRetry {
    keys: FxHashMap<KeyId, Entry>,
    /// Start of the current log-budget window, and lines used in it.
    window_ms: u64,
    lines: u32,
}

impl KeyRetry {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether `key` is failing.
    pub fn failing(&self, key: &KeyId) -> bool {
        !self.keys.is_empty() && self.keys.contains_key(key)
    }

    /// Whether a failing `key` may be sent again at `now_ms` (true for a key not failing).
    pub fn due(&self, key: &KeyId, now_ms: u64) -> bool {
        self.keys.get(key).is_none_or(|e| e.due_ms <= now_ms)
    }

    /// The earliest moment a failing key may be sent again.
    pub fn next_due(&self) -> Option<u64> {
        self.keys.values().map(|e| e.due_ms).min()
    }

    /// Make every failing key due at once (shutdown).
    pub fn hurry(&mut self, now_ms: u64) {
        for e in self.keys.values_mut() {
            e.due_ms = e.due_ms.min(now_ms);
        }
    }

    /// `key` got an error reply at `now_ms`; `entropy` is any varying number (jitter).
    pub fn failed(&mut self, key: KeyId, error: KeyError, now_ms: u64, entropy: u64) -> Note {
        if now_ms.saturating_sub(self.window_ms) >= LOG_EVERY_MS {
            self.window_ms = now_ms;
            self.lines = 0;
        }
        let e = self.keys.entry(key.clone()).or_insert(Entry {
            attempts: 0,
            due_ms: 0,
            logged_ms: None,
            suppressed: 0,
        });
        e.attempts = e.attempts.saturating_add(1);
        let base = MIN_MS
            .saturating_mul(1 << (e.attempts - 1).min(16))
            .min(MAX_MS);
        let retry_in_ms = base + entropy % (base / 4).max(1);
        e.due_ms = now_ms + retry_in_ms;
        let wants = e
            .logged_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= LOG_EVERY_MS);
        let log = wants && self.lines < LOG_BUDGET;
        let suppressed = e.suppressed;
        if log {
            self.lines += 1;
            e.logged_ms = Some(now_ms);
            e.suppressed = 0;
        } else {
            e.suppressed += 1;
        }
        Note::Failed {
            key,
            error,
            attempt: e.attempts,
            retry_in_ms,
            log,
            suppressed,
        }
    }

    /// `key`'s command succeeded: forget it. A note if it had been failing.
    pub fn landed(&mut self, key: &KeyId) -> Option<Note> {
        if self.keys.is_empty() {
            return None;
        }
        let e = self.keys.remove(key)?;
        Some(Note::Healed {
            key: key.clone(),
            attempts: e.attempts,
        })
    }

    /// Forget every key due by `now_ms` (the caller found nothing left to send for them).
    pub fn drop_due(&mut self, now_ms: u64) {
        if !self.keys.is_empty() {
            self.keys.retain(|_, e| e.due_ms > now_ms);
        }
    }

    /// Forget `key` without a note (its write was superseded or dropped).
    pub fn forget(&mut self, key: &KeyId) {
        if !self.keys.is_empty() {
            self.keys.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(reason: &str) -> KeyError {
        KeyError {
            reason: reason.into(),
            detail: "Operation against a key holding the wrong kind of value".into(),
        }
    }

    fn port(p: &str) -> KeyId {
        KeyId::State(p.into())
    }

    /// (now_ms, input) → (attempt, retry_in_ms, log, suppressed) for one key failing repeatedly,
    /// entropy 0: the backoff doubles from MIN_MS to MAX_MS; one line first, then one a minute.
    #[test]
    fn one_key_backs_off_and_logs_once_a_minute() {
        let table: [(u64, (u32, u64, bool, u64)); 9] = [
            (0, (1, 100, true, 0)),
            (100, (2, 200, false, 0)),
            (300, (3, 400, false, 1)),
            (700, (4, 800, false, 2)),
            (1_500, (5, 1_600, false, 3)),
            (3_100, (6, 2_000, false, 4)),
            (5_100, (7, 2_000, false, 5)),
            (60_000, (8, 2_000, true, 6)),
            (62_000, (9, 2_000, false, 0)),
        ];
        let mut r = KeyRetry::default();
        for (now, want) in table {
            let got = match r.failed(port("Ethernet4"), err("WRONGTYPE"), now, 0) {
                Note::Failed {
                    attempt,
                    retry_in_ms,
                    log,
                    suppressed,
                    ..
                } => (attempt, retry_in_ms, log, suppressed),
                n => panic!("{n:?}"),
            };
            assert_eq!(got, want, "at {now} ms");
            assert!(!r.due(&port("Ethernet4"), now));
            assert!(r.due(&port("Ethernet4"), now + got.1));
            assert!(r.due(&port("Ethernet8"), now), "other keys are not held");
        }
        assert_eq!(
            r.landed(&port("Ethernet4")),
            Some(Note::Healed {
                key: port("Ethernet4"),
                attempts: 9
            })
        );
        assert!(r.is_empty() && r.next_due().is_none());
        assert_eq!(r.landed(&port("Ethernet4")), None, "healed once");
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for entropy in [0, 1, 24, 25, 99, 12_345, u64::MAX] {
            let mut r = KeyRetry::default();
            match r.failed(port("Ethernet0"), err("OOM"), 0, entropy) {
                Note::Failed { retry_in_ms, .. } => {
                    assert!((100..125).contains(&retry_in_ms), "{retry_in_ms}")
                }
                n => panic!("{n:?}"),
            }
        }
    }

    #[test]
    fn many_keys_share_a_line_budget_per_minute() {
        let mut r = KeyRetry::default();
        let logged = (0..100)
            .filter(|i| {
                matches!(
                    r.failed(port(&format!("Ethernet{i}")), err("OOM"), 10, 0),
                    Note::Failed { log: true, .. }
                )
            })
            .count();
        assert_eq!(logged, LOG_BUDGET as usize);
        // A new window: the keys not reported yet get their first line.
        assert!(matches!(
            r.failed(port("Ethernet99"), err("OOM"), 10 + LOG_EVERY_MS, 0),
            Note::Failed {
                log: true,
                suppressed: 1,
                ..
            }
        ));
        assert_eq!(r.len(), 100);
        assert_eq!(r.next_due(), Some(110));
        r.forget(&port("Ethernet0"));
        assert!(!r.failing(&port("Ethernet0")) && r.failing(&port("Ethernet1")));
        r.drop_due(110);
        assert_eq!(r.len(), 1, "only Ethernet99 is due later");
        r.hurry(50);
        assert_eq!(r.next_due(), Some(50));
    }
}
