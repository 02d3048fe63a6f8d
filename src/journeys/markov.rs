//! The Markov model's removal effects, solved exactly as linear systems (no simulation).
//!
//! With Q the transitions among the transient states (start and the keys) and N = (I − Q)⁻¹,
//! the probability of conversion from each state is p = N·r (r: each state's transition
//! probability into conversion). Removing key c (its transitions replaced by c → null) changes
//! only the walks that reach c, which then never convert: P₋c = P − h_c·p_c, where
//! h_c = N[start, c] / N[c, c] is the probability of ever reaching c from start. So one
//! inverse of a K×K matrix gives every removal effect, instead of one solve per key.

use std::collections::BTreeMap;

/// A state of the chain: a key by its index, or one of the fixed states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Start,
    Key(usize),
    Conversion,
    Null,
}

/// Transition counts of one dimension's paths over `keys` keys.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub keys: usize,
    pub counts: BTreeMap<(State, State), u64>,
}

impl Chain {
    /// Adds a path's transitions: start → k1 → … → kn → `end` (conversion or null).
    pub fn add_path(&mut self, keys: &[usize], end: State, times: u64) {
        let mut from = State::Start;
        for &k in keys {
            *self.counts.entry((from, State::Key(k))).or_default() += times;
            from = State::Key(k);
        }
        *self.counts.entry((from, end)).or_default() += times;
    }

    /// The removal effect RE_c = 1 − P₋c / P of every key; all zero when no walk converts.
    pub fn removal_effects(&self) -> Vec<f64> {
        let k = self.keys;
        // Transient states: 0 = start, 1 + i = key i.
        let n = k + 1;
        let index = |s: State| match s {
            State::Start => Some(0),
            State::Key(i) => Some(1 + i),
            _ => None,
        };
        let mut totals = vec![0u64; n];
        for (&(from, _), &c) in &self.counts {
            if let Some(i) = index(from) {
                totals[i] += c;
            }
        }
        // A = I − Q, r = transitions into conversion.
        let mut a = vec![vec![0.0; n]; n];
        let mut r = vec![0.0; n];
        for (i, row) in a.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        for (&(from, to), &c) in &self.counts {
            let Some(i) = index(from) else { continue };
            let p = c as f64 / totals[i] as f64;
            match (to, index(to)) {
                (_, Some(j)) => a[i][j] -= p,
                (State::Conversion, None) => r[i] += p,
                _ => {}
            }
        }
        let Some(inverse) = invert(a) else {
            return vec![0.0; k];
        };
        let p: Vec<f64> = inverse
            .iter()
            .map(|row| row.iter().zip(&r).map(|(x, y)| x * y).sum())
            .collect();
        let total = p[0];
        if total <= 0.0 {
            return vec![0.0; k];
        }
        (0..k)
            .map(|c| {
                let j = 1 + c;
                let reach = inverse[0][j] / inverse[j][j];
                let without = (total - reach * p[j]).max(0.0);
                (1.0 - without / total).max(0.0)
            })
            .collect()
    }
}

/// Gauss–Jordan elimination with partial pivoting; `None` when the matrix is singular (a chain
/// whose walks need not end, which paths that all end cannot make).
fn invert(mut a: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut inv: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        for j in 0..n {
            a[col][j] /= d;
            inv[col][j] /= d;
        }
        let (pivot_a, pivot_inv) = (a[col].clone(), inv[col].clone());
        for row in 0..n {
            let f = a[row][col];
            if row == col || f == 0.0 {
                continue;
            }
            for j in 0..n {
                a[row][j] -= f * pivot_a[j];
                inv[row][j] -= f * pivot_inv[j];
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Removal effects the slow way: a solve of the chain without each key.
    fn by_removal(chain: &Chain) -> Vec<f64> {
        let p = |removed: Option<usize>| {
            let mut c = chain.clone();
            if let Some(x) = removed {
                let from = State::Key(x);
                let n: u64 = c
                    .counts
                    .iter()
                    .filter(|((f, _), _)| *f == from)
                    .map(|(_, n)| n)
                    .sum();
                c.counts.retain(|(f, _), _| *f != from);
                c.counts.insert((from, State::Null), n);
            }
            // p(start) by value iteration to convergence on this small chain.
            let mut v = vec![0.0; chain.keys + 1];
            for _ in 0..10_000 {
                let mut next = vec![0.0; chain.keys + 1];
                for (i, slot) in next.iter_mut().enumerate() {
                    let from = if i == 0 {
                        State::Start
                    } else {
                        State::Key(i - 1)
                    };
                    let out: Vec<_> = c.counts.iter().filter(|((f, _), _)| *f == from).collect();
                    let total: u64 = out.iter().map(|(_, n)| **n).sum();
                    for ((_, to), n) in out {
                        let w = *n as f64 / total as f64;
                        *slot += w * match to {
                            State::Conversion => 1.0,
                            State::Key(j) => v[j + 1],
                            _ => 0.0,
                        };
                    }
                }
                v = next;
            }
            v[0]
        };
        let total = p(None);
        (0..chain.keys).map(|c| 1.0 - p(Some(c)) / total).collect()
    }

    #[test]
    fn removal_effects_match_removing_each_key_and_solving_again() {
        let mut chain = Chain {
            keys: 3,
            ..Default::default()
        };
        chain.add_path(&[0, 1], State::Conversion, 3);
        chain.add_path(&[1, 0, 1], State::Conversion, 1);
        chain.add_path(&[2], State::Null, 2);
        chain.add_path(&[0, 2], State::Conversion, 1);
        chain.add_path(&[1, 2, 0], State::Null, 2);
        let fast = chain.removal_effects();
        let slow = by_removal(&chain);
        for (f, s) in fast.iter().zip(&slow) {
            assert!((f - s).abs() < 1e-9, "{fast:?} vs {slow:?}");
        }
    }

    #[test]
    fn a_key_on_every_converting_path_has_removal_effect_one_and_a_bypassed_key_less() {
        let mut chain = Chain {
            keys: 2,
            ..Default::default()
        };
        chain.add_path(&[0, 1], State::Conversion, 1);
        chain.add_path(&[1], State::Null, 1);
        // start→a ½, start→b ½, a→b, b→conversion ½, b→null ½: P = ½. Without a (a→null):
        // ¼, RE ½. Without b: 0, RE 1.
        let got = chain.removal_effects();
        assert!(
            (got[0] - 0.5).abs() < 1e-12 && (got[1] - 1.0).abs() < 1e-12,
            "{got:?}"
        );
    }
}
