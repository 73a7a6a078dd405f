//! When a collection that grew in a storm gives its room back (pure). A hash map or deque
//! keeps the capacity of its largest moment: 1,024 flap alerts firing at once leave the
//! alert engine's tables sized for 1,024 after they resolve, and a table of that size is
//! one allocation the heap cannot hand back while it lives. The rule: shrink once a
//! collection is at most a quarter full and the room is worth a reallocation (at least
//! `MIN_ROOM` slots). A quarter, not a half, so a collection that hovers around a size does
//! not shrink and regrow on every tick. And when the heap is trimmed after writes: once a
//! burst is over — nothing pending, no alert rows queued — and enough was written since the
//! last trim to be worth the walk of the heap (a single flip must not pay for one).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Below this capacity shrinking is not worth the reallocation (a 64-slot table of the
/// engine's largest entries is ≈ 4 kB).
pub const MIN_ROOM: usize = 64;

/// Rows written since the last heap trim before the next idle moment trims again.
pub const TRIM_AFTER: usize = 512;

/// Whether to trim the heap after a flush landed: `written` rows since the last trim, ports
/// and alert rows still waiting to go out. A storm of alerts is written over several flushes
/// (`outbox::ROWS_PER_FLUSH`); trimming before the last would leave its buffers resident.
pub fn trim_after_flush(written: usize, ports_pending: usize, rows_pending: usize) -> bool {
    written >= TRIM_AFTER && ports_pending == 0 && rows_pending == 0
}

/// Whether a collection holding `len` items with room for `capacity` should shrink.
pub fn worth(len: usize, capacity: usize) -> bool {
    capacity >= MIN_ROOM && len <= capacity / 4
}

/// Shrink `m` if it is `worth` it; true if it did.
pub fn map<K: Eq + Hash, V, S: BuildHasher>(m: &mut HashMap<K, V, S>) -> bool {
    let w = worth(m.len(), m.capacity());
    if w {
        m.shrink_to_fit();
    }
    w
}

/// Shrink `q` if it is `worth` it; true if it did.
pub fn deque<T>(q: &mut VecDeque<T>) -> bool {
    let w = worth(q.len(), q.capacity());
    if w {
        q.shrink_to_fit();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (len, capacity) → shrink?
    #[test]
    fn issue15_shrink_only_when_mostly_empty_and_big() {
        let cases = [
            ((0, 0), false),
            ((0, 63), false), // too small to bother
            ((0, 64), true),
            ((16, 64), true), // a quarter full
            ((17, 64), false),
            ((0, 1792), true), // 1,024 firing alerts, all resolved
            ((448, 1792), true),
            ((449, 1792), false),
            ((1024, 1792), false), // still firing
        ];
        for ((len, cap), want) in cases {
            assert_eq!(worth(len, cap), want, "len {len} capacity {cap}");
        }
    }

    /// (rows written since the last trim, ports pending, alert rows queued) → trim?
    #[test]
    fn issue15_trim_once_the_burst_is_written() {
        let cases = [
            ((0, 0, 0), false),
            ((1, 0, 0), false), // a single flip: not worth a heap walk
            ((511, 0, 0), false),
            ((512, 0, 0), true),
            ((1024, 1, 0), false),   // ports still pending
            ((1024, 0, 896), false), // alert rows still to go: trim after the last flush
            ((2048, 0, 0), true),
        ];
        for ((w, p, r), want) in cases {
            assert_eq!(
                trim_after_flush(w, p, r),
                want,
                "written {w}, ports {p}, rows {r}"
            );
        }
    }

    /// A map that grew to 1,024 and emptied gives its table back; one still full keeps it.
    #[test]
    fn issue15_map_gives_room_back_after_a_storm() {
        let mut m: HashMap<u32, u64> = (0..1024).map(|i| (i, 0)).collect();
        assert!(!map(&mut m));
        m.retain(|k, _| *k < 8);
        let before = m.capacity();
        assert!(map(&mut m));
        assert!(m.capacity() < before / 16, "{} → {}", before, m.capacity());
        assert_eq!(m.len(), 8);
        assert!(!map(&mut m), "shrunk once, then left alone");
        let mut q: VecDeque<u64> = (0..1000).collect();
        q.drain(..990);
        assert!(deque(&mut q));
        assert!(q.capacity() < 64);
    }
}
