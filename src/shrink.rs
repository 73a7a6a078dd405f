//! When a collection that grew in a storm gives its room back (pure). A hash map or deque
//! keeps the capacity of its largest moment: 1,024 flap alerts firing at once leave the
//! alert engine's tables sized for 1,024 after they resolve, and a table of that size is
//! one allocation the heap cannot hand back while it lives. The rule: shrink once a
//! collection is at most a quarter full and the room is worth a reallocation (at least
//! `MIN_ROOM` slots). A quarter, not a half, so a collection that hovers around a size does
//! not shrink and regrow on every tick.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Below this capacity shrinking is not worth the reallocation (a 64-slot table of the
/// engine's largest entries is ≈ 4 kB).
pub const MIN_ROOM: usize = 64;

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
