//! The journeys of every user summed as they stream past, sorted by user: each user's paths
//! and credits (`paths.rs`) added to per-key totals. Shares are added as fixed-point numbers
//! with 18 decimals, so the totals are exact sums of the rounded shares: the same whatever
//! order the users came in (a float sum depends on its order).

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    numbers: HashMap<String, u32>,
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

/// The totals, kept per key number while the users stream past.
#[derive(Debug, Default)]
pub(super) struct Tally {
    keys: [Keys; 2],
    /// (dimension, model, key) → (conversions, revenue), fixed point.
    credits: HashMap<(usize, &'static str, Option<u32>), (i128, i128)>,
    /// (dimension, path) → (conversions, non-conversions, value in micro-units).
    paths: HashMap<(usize, Vec<u32>), (i64, i64, i128)>,
    /// (dimension, from (null: start), to (null: the end), the end is conversion) → count.
    transitions: HashMap<(usize, Option<u32>, Option<u32>, bool), u64>,
    /// Per dimension, the keys on a converting path.
    converting: [BTreeSet<u32>; 2],
}

/// The totals named: what `assemble` reads.
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
        let counted: Vec<(&Conversion, i128)> = conversions
            .iter()
            .filter(|c| c.counts)
            .map(|c| (&c.conversion, c.value))
            .collect();
        let judged = match (range, sessions.last()) {
            (Some((from, to)), Some(last)) => (from..to).contains(&last.time),
            _ => true,
        };
        let markov = options.models.contains(&Model::Markov);
        for d in 0..DIMENSIONS.len() {
            let touch: Vec<Session<u32>> = sessions
                .iter()
                .map(|s| Session {
                    time: s.time,
                    key: s.keys[d],
                })
                .collect();
            for &(conv, value) in &counted {
                let path = paths::conversion_path(&touch, conv, options);
                self.path(d, &path, 1, 0, value);
                self.converting[d].extend(path.keys.iter().copied());
                for model in &options.models {
                    if *model == Model::Markov {
                        continue;
                    }
                    for (key, share) in
                        paths::shares(*model, &path, conv.time, options.half_life_micros)
                    {
                        let credit = self.credits.entry((d, model.name(), key)).or_default();
                        credit.0 += fixed(share);
                        credit.1 += fixed(share * value as f64 / 1e6);
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
        let key = (d, path.keys.clone());
        let row = self.paths.entry(key).or_default();
        row.0 += converted;
        row.1 += non;
        row.2 += value;
    }

    fn transitions(&mut self, d: usize, keys: &[u32], converted: bool) {
        let mut from = None;
        for &key in keys {
            *self
                .transitions
                .entry((d, from, Some(key), false))
                .or_default() += 1;
            from = Some(key);
        }
        *self
            .transitions
            .entry((d, from, None, converted))
            .or_default() += 1;
    }

    /// The totals with their keys named (sorted maps: the outputs' order follows from them).
    pub fn totals(self) -> Totals {
        let dim = |d: usize| DIMENSIONS[d].to_string();
        let keys = &self.keys;
        let mut totals = Totals::default();
        for ((d, model, key), sums) in self.credits {
            let named = (dim(d), model.to_string(), keys[d].name(key));
            totals.credits.insert(named, sums);
        }
        for ((d, path), sums) in self.paths {
            let names: Vec<&str> = path
                .iter()
                .map(|&k| keys[d].names[k as usize].as_str())
                .collect();
            let text = (!names.is_empty()).then(|| names.join(" > "));
            totals.paths.insert((dim(d), text), sums);
        }
        for ((d, from, to, converted), n) in self.transitions {
            let named = (dim(d), keys[d].name(from), keys[d].name(to), converted);
            totals.transitions.insert(named, n);
        }
        for (d, converting) in self.converting.iter().enumerate() {
            let names = converting
                .iter()
                .map(|&k| keys[d].names[k as usize].clone());
            totals.keys.insert(DIMENSIONS[d], names.collect());
        }
        totals
    }
}
