//! The journeys of every user summed as they stream past, sorted by user: each user's paths
//! and credits (`paths.rs`) added to per-key totals. Shares are added as fixed-point numbers
//! with 18 decimals, so the totals are exact sums of the rounded shares: the same whatever
//! order the users came in (a float sum depends on its order).

use std::collections::{BTreeMap, BTreeSet};

use super::paths::{self, Conversion, Path, Session};
use super::{Model, Options, DIMENSIONS};

/// One session of the user being summed: its time and its key per dimension.
#[derive(Debug, Clone)]
pub(super) struct UserSession {
    pub time: i64,
    pub keys: [Option<String>; 2],
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

/// The totals, per dimension name.
#[derive(Debug, Default)]
pub(super) struct Tally {
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
        for (d, dim) in DIMENSIONS.into_iter().enumerate() {
            let touch: Vec<Session> = sessions
                .iter()
                .map(|s| Session {
                    time: s.time,
                    key: s.keys[d].as_deref(),
                })
                .collect();
            for &(conv, value) in &counted {
                let path = paths::conversion_path(&touch, conv, options);
                self.path(dim, &path, 1, 0, value);
                let keys = self.keys.entry(dim).or_default();
                for key in &path.keys {
                    if !keys.contains(*key) {
                        keys.insert(key.to_string());
                    }
                }
                for model in &options.models {
                    if *model == Model::Markov {
                        continue;
                    }
                    for (key, share) in
                        paths::shares(*model, &path, conv.time, options.half_life_micros)
                    {
                        let credit = self
                            .credits
                            .entry((dim.into(), model.name().into(), key.map(String::from)))
                            .or_default();
                        credit.0 += fixed(share);
                        credit.1 += fixed(share * value as f64 / 1e6);
                    }
                }
                if markov && !path.keys.is_empty() {
                    self.transitions(dim, &path.keys, true);
                }
            }
            let non = judged
                .then(|| paths::non_converting_path(&touch, &plain, options))
                .flatten();
            if let Some(path) = non {
                self.path(dim, &path, 0, 1, 0);
                if markov {
                    self.transitions(dim, &path.keys, false);
                }
            }
        }
    }

    fn path(&mut self, dim: &str, path: &Path, converted: i64, non: i64, value: i128) {
        let text = (!path.keys.is_empty()).then(|| path.keys.join(" > "));
        let row = self.paths.entry((dim.into(), text)).or_default();
        row.0 += converted;
        row.1 += non;
        row.2 += value;
    }

    fn transitions(&mut self, dim: &str, keys: &[&str], converted: bool) {
        let mut from: Option<String> = None;
        for key in keys {
            *self
                .transitions
                .entry((dim.into(), from.clone(), Some(key.to_string()), false))
                .or_default() += 1;
            from = Some(key.to_string());
        }
        *self
            .transitions
            .entry((dim.into(), from, None, converted))
            .or_default() += 1;
    }
}
