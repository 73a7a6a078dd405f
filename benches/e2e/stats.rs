//! Figures over several runs: the median with the spread (min–max), percentiles of a sorted
//! sample, and the C++ ÷ ours ratio every side-by-side row prints.

#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    pub med: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(v: &[f64]) -> Stat {
        if v.is_empty() {
            return Stat::default();
        }
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Stat {
            med: s[s.len() / 2],
            lo: s[0],
            hi: s[s.len() - 1],
            n: s.len(),
        }
    }

    /// `12.3 (11.0–14.2)` with `prec` decimals; `–` when nothing was measured.
    pub fn show(&self, prec: usize) -> String {
        if self.n == 0 {
            return "–".into();
        }
        if self.n == 1 {
            return format!("{:.prec$}", self.med);
        }
        format!(
            "{:.prec$} ({:.prec$}–{:.prec$})",
            self.med, self.lo, self.hi
        )
    }
}

/// The value at quantile `p` of an ascending sample.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// C++ ÷ ours for a lower-is-better figure: above 1 means ours is faster (or smaller).
pub fn ratio(cpp: f64, ours: f64) -> String {
    if ours <= 0.0 || cpp <= 0.0 {
        return "–".into();
    }
    let r = cpp / ours;
    if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}
