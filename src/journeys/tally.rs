//! The journeys of every user summed as they stream past, sorted by user: each user's paths
//! and credits (`paths.rs`) added to per-key totals. Shares are added as fixed-point numbers
//! with 18 decimals, so the totals are exact sums of the rounded shares: the same whatever
//! order the users came in (a float sum depends on its order).

use std::collections::{BTreeMap, BTreeSet};

use ahash::{AHashMap, AHashSet};

use super::paths::{self, Conversion, Path, Session};
use super::{Model, Options, DIMENSIONS};

/// One session of the user being summed: its time and its key per dimension (numbered by
/// [`Tally::key`]).
#[derive(Debug, Clone)]
pub(super) struct UserSession {
    pub time: i64,
    pub keys: [Option<u32>; 2],
}

/// One conversion of the user being summed.
#[derive(Debug, Clone)]
pub(super) struct UserConversion {
    pub conversion: Conversion,
    /// billingCost in micro-units.
    pub value: i128,
    /// Its purchaseTime is in the period: it is credited (else it only bounds the user's
    /// non-converting path).
    pub counts: bool,
}

/// Fixed-point shares: 10^18 is one.
pub(super) const ONE: f64 = 1e18;

fn fixed(x: f64) -> i128 {
    (x * ONE).round() as i128
}

/// The keys of one dimension, numbered in the order they were first seen: the totals are kept
/// per number (no text to hash, compare or copy per user) and named once, at the end.
#[derive(Debug, Default)]
struct Keys {
    numbers: AHashMap<String, u32>,
    names: Vec<String>,
}

impl Keys {
    fn number(&mut self, key: &str) -> u32 {
        if let Some(&n) = self.numbers.get(key) {
            return n;
        }
        let n = self.names.len() as u32;
        self.names.push(key.to_string());
        self.numbers.insert(key.to_string(), n);
        n
    }

    fn name(&self, key: Option<u32>) -> Option<String> {
        key.map(|k| self.names[k as usize].clone())
    }
}

/// Credits of one model in one dimension, per key number + 1 (0: the null touchpoint):
/// (conversions, revenue), fixed point. Dense: the keys are numbered from 0.
type Credits = Vec<(i128, i128)>;

/// A transition: from (null: start), to (null: the end), whether the end is conversion.
type Transition = (Option<u32>, Option<u32>, bool);

/// The totals of one part of the users, kept per key number while they stream past.
#[derive(Debug, Default)]
pub(super) struct Tally {
    keys: [Keys; 2],
    /// Per dimension, per model (in [`Model::ALL`]'s order).
    credits: [[Credits; Model::ALL.len()]; 2],
    /// Per dimension, path → (conversions, non-conversions, value in micro-units).
    paths: [AHashMap<Vec<u32>, (i64, i64, i128)>; 2],
    /// Per dimension, transition → count.
    transitions: [AHashMap<Transition, u64>; 2],
    /// Per dimension, the keys on a converting path.
    converting: [AHashSet<u32>; 2],
}

/// The totals named: what `assemble` reads. Sums of integers, so the totals of parts of the
/// users add up to the totals of all of them, whichever way they were split.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// (dimension, model, key) → (conversions, revenue), fixed point.
    pub credits: BTreeMap<(String, String, Option<String>), (i128, i128)>,
    /// (dimension, path) → (conversions, non-conversions, value in micro-units).
    pub paths: BTreeMap<(String, Option<String>), (i64, i64, i128)>,
    /// (dimension, from (null: start), to (null: the end), the end is conversion) → count.
    pub transitions: BTreeMap<(String, Option<String>, Option<String>, bool), u64>,
    /// Per dimension, every key on a converting path: the rows the outputs have, whatever
    /// the models credited.
    pub keys: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Totals {
    /// Adds the totals of another part of the users.
    pub fn add(&mut self, other: Totals) {
        for (key, (c, r)) in other.credits {
            let sums = self.credits.entry(key).or_default();
            sums.0 += c;
            sums.1 += r;
        }
        for (key, (c, n, v)) in other.paths {
            let sums = self.paths.entry(key).or_default();
            sums.0 += c;
            sums.1 += n;
            sums.2 += v;
        }
        for (key, n) in other.transitions {
            *self.transitions.entry(key).or_default() += n;
        }
        for (dim, keys) in other.keys {
            self.keys.entry(dim).or_default().extend(keys);
        }
    }
}

impl Tally {
    /// The number of `key` in dimension `d` (0: campaign, 1: channel).
    pub fn key(&mut self, d: usize, key: &str) -> u32 {
        self.keys[d].number(key)
    }

    /// Adds one user's journeys: `sessions` in session order, `conversions` with their value
    /// in micro-units and whether they count (their purchaseTime is in the period). Every
    /// conversion bounds the non-converting path; it is kept when its last session starts in
    /// `range` (microseconds, end excluded; `None`: always).
    pub fn add_user(
        &mut self,
        sessions: &[UserSession],
        conversions: &[UserConversion],
        options: &Options,
        range: Option<(i64, i64)>,
    ) {
        let plain: Vec<Conversion> = conversions.iter().map(|c| c.conversion.clone()).collect();
        let judged = match (range, sessions.last()) {
            (Some((from, to)), Some(last)) => (from..to).contains(&last.time),
            _ => true,
        };
        let markov = options.models.contains(&Model::Markov);
        let mut touch: Vec<Session<u32>> = Vec::with_capacity(sessions.len());
        for d in 0..DIMENSIONS.len() {
            touch.clear();
            touch.extend(sessions.iter().map(|s| Session {
                time: s.time,
                key: s.keys[d],
            }));
            for counted in conversions.iter().filter(|c| c.counts) {
                let (conv, value) = (&counted.conversion, counted.value);
                let path = paths::conversion_path(&touch, conv, options);
                self.path(d, &path, 1, 0, value);
                self.converting[d].extend(path.keys.iter().copied());
                for model in &options.models {
                    if *model == Model::Markov {
                        continue;
                    }
                    let credits = &mut self.credits[d][*model as usize];
                    for (key, share) in
                        paths::shares(*model, &path, conv.time, options.half_life_micros)
                    {
                        let at = key.map_or(0, |k| k as usize + 1);
                        if credits.len() <= at {
                            credits.resize(at + 1, (0, 0));
                        }
                        credits[at].0 += fixed(share);
                        credits[at].1 += fixed(share * value as f64 / 1e6);
                    }
                }
                if markov && !path.keys.is_empty() {
                    self.transitions(d, &path.keys, true);
                }
            }
            let non = judged
                .then(|| paths::non_converting_path(&touch, &plain, options))
                .flatten();
            if let Some(path) = non {
                self.path(d, &path, 0, 1, 0);
                if markov {
                    self.transitions(d, &path.keys, false);
                }
            }
        }
    }

    fn path(&mut self, d: usize, path: &Path<u32>, converted: i64, non: i64, value: i128) {
        let paths = &mut self.paths[d];
        let row = match paths.get_mut(path.keys.as_slice()) {
            Some(row) => row,
            None => paths.entry(path.keys.clone()).or_default(),
        };
        row.0 += converted;
        row.1 += non;
        row.2 += value;
    }

    fn transitions(&mut self, d: usize, keys: &[u32], converted: bool) {
        let transitions = &mut self.transitions[d];
        let mut from = None;
        for &key in keys {
            *transitions.entry((from, Some(key), false)).or_default() += 1;
            from = Some(key);
        }
        *transitions.entry((from, None, converted)).or_default() += 1;
    }

    /// The totals with their keys named (sorted maps: the outputs' order follows from them).
    pub fn totals(self) -> Totals {
        let mut totals = Totals::default();
        for (d, keys) in self.keys.iter().enumerate() {
            let dim = || DIMENSIONS[d].to_string();
            for (model, credits) in Model::ALL.iter().zip(&self.credits[d]) {
                for (at, sums) in credits.iter().enumerate() {
                    let key = at.checked_sub(1).map(|k| k as u32);
                    let named = (dim(), model.name().to_string(), keys.name(key));
                    totals.credits.insert(named, *sums);
                }
            }
            for (path, sums) in &self.paths[d] {
                let names: Vec<&str> = path
                    .iter()
                    .map(|&k| keys.names[k as usize].as_str())
                    .collect();
                let text = (!names.is_empty()).then(|| names.join(" > "));
                totals.paths.insert((dim(), text), *sums);
            }
            for (&(from, to, converted), &n) in &self.transitions[d] {
                let named = (dim(), keys.name(from), keys.name(to), converted);
                totals.transitions.insert(named, n);
            }
            let names = self.converting[d]
                .iter()
                .map(|&k| keys.names[k as usize].clone());
            totals.keys.insert(DIMENSIONS[d], names.collect());
        }
        totals
    }
}
