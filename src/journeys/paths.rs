//! One user's journeys, as the README's Semantics ("Journey attribution") define them: the path
//! of each conversion and the user's non-converting path, per dimension, and the credit each
//! rule-based model gives to the positions of a path. Pure functions of one user's sessions
//! and conversions: the tally (`tally.rs`) calls them per user, and the tests call them
//! directly.

use super::{Model, Options, PathTransform};

/// A key of a dimension: the key's text, or a number standing for it (the tally's).
pub trait Key: Copy + PartialEq {}
impl<K: Copy + PartialEq> Key for K {}

/// A touchpoint: a session (its app_open), in session order within its user.
#[derive(Debug, Clone, PartialEq)]
pub struct Session<K> {
    /// The app_open's eventTime, in microseconds.
    pub time: i64,
    /// The session's key in the dimension being modelled (campaignId or channelId).
    pub key: Option<K>,
}

/// A conversion of the user: a confirmed attributed purchase.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// Index of its session S in the user's sessions.
    pub session: usize,
    /// T: eventTime of the purchase event that attributes it, in microseconds.
    pub time: i64,
}

/// A path before and after its transform.
#[derive(Debug, Clone, PartialEq)]
pub struct Path<K> {
    /// Keys and session times after dropping null keys and the steps limit (time decay
    /// weighs these positions).
    pub raw: Vec<(K, i64)>,
    /// The keys after the path transform (every other model credits these positions).
    pub keys: Vec<K>,
}

impl<K> Default for Path<K> {
    fn default() -> Self {
        Path {
            raw: Vec::new(),
            keys: Vec::new(),
        }
    }
}

/// The path of `conversion`: the sessions before S that start at or after T − lookback, then
/// S; null keys dropped, the last `steps` kept, then transformed.
pub fn conversion_path<K: Key>(
    sessions: &[Session<K>],
    conversion: &Conversion,
    options: &Options,
) -> Path<K> {
    let from = conversion.time.saturating_sub(options.lookback_micros);
    let before = sessions[..conversion.session]
        .iter()
        .filter(|s| s.time >= from);
    let chosen: Vec<&Session<K>> = before.chain(sessions.get(conversion.session)).collect();
    finish(&chosen, options)
}

/// The user's non-converting path: the sessions after the session of the last conversion (all
/// of them without one), those that start at or after the last one's start − lookback; null
/// keys dropped, steps, transform. `None` when it is empty.
pub fn non_converting_path<K: Key>(
    sessions: &[Session<K>],
    conversions: &[Conversion],
    options: &Options,
) -> Option<Path<K>> {
    let start = conversions.iter().map(|c| c.session + 1).max().unwrap_or(0);
    let rest = sessions.get(start..).unwrap_or_default();
    let last = rest.last()?;
    let from = last.time.saturating_sub(options.lookback_micros);
    let chosen: Vec<&Session<K>> = rest.iter().filter(|s| s.time >= from).collect();
    let path = finish(&chosen, options);
    (!path.keys.is_empty()).then_some(path)
}

fn finish<K: Key>(chosen: &[&Session<K>], options: &Options) -> Path<K> {
    let mut raw: Vec<(K, i64)> = chosen
        .iter()
        .filter_map(|s| s.key.map(|k| (k, s.time)))
        .collect();
    if options.steps > 0 && raw.len() > options.steps {
        raw.drain(..raw.len() - options.steps);
    }
    let keys = transform(raw.iter().map(|(k, _)| *k), options.transform);
    Path { raw, keys }
}

/// Applies a path transform to a sequence of keys.
pub fn transform<K: Key>(keys: impl Iterator<Item = K>, how: PathTransform) -> Vec<K> {
    let mut out: Vec<K> = Vec::new();
    for key in keys {
        let keep = match how {
            PathTransform::None => true,
            PathTransform::Exposure => out.last() != Some(&key),
            PathTransform::First => !out.contains(&key),
        };
        if keep {
            out.push(key);
        }
    }
    out
}

/// The shares a rule-based model gives to a conversion's path (summing to 1), one per position
/// (a key may hold several); `None` is the null touchpoint of an empty path. `conversion_time`
/// and `half_life_micros` are for time decay.
pub fn shares<K: Key>(
    model: Model,
    path: &Path<K>,
    conversion_time: i64,
    half_life_micros: f64,
) -> Vec<(Option<K>, f64)> {
    let keys = &path.keys;
    let n = keys.len();
    if n == 0 || path.raw.is_empty() {
        return vec![(None, 1.0)];
    }
    let at = |i: usize, share: f64| (Some(keys[i]), share);
    match model {
        Model::FirstTouch => vec![at(0, 1.0)],
        Model::LastTouch => vec![at(n - 1, 1.0)],
        Model::Linear => (0..n).map(|i| at(i, 1.0 / n as f64)).collect(),
        Model::PositionBased => match n {
            1 => vec![at(0, 1.0)],
            2 => vec![at(0, 0.5), at(1, 0.5)],
            _ => {
                let middle = 0.2 / (n - 2) as f64;
                (0..n)
                    .map(|i| at(i, if i == 0 || i == n - 1 { 0.4 } else { middle }))
                    .collect()
            }
        },
        Model::TimeDecay => {
            // Weights relative to the latest position: the same shares as 2^(−age/h), without
            // underflow when every touchpoint is old.
            let ages: Vec<f64> = path
                .raw
                .iter()
                .map(|(_, t)| (conversion_time - t) as f64 / half_life_micros)
                .collect();
            let youngest = ages.iter().copied().fold(f64::INFINITY, f64::min);
            let weights: Vec<f64> = ages.iter().map(|a| (-(a - youngest)).exp2()).collect();
            let total: f64 = weights.iter().sum();
            path.raw
                .iter()
                .zip(weights)
                .map(|((k, _), w)| (Some(*k), w / total))
                .collect()
        }
        // Markov's credits come from the whole chain (`markov.rs`), not from one path.
        Model::Markov => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn s(day: i64, key: Option<&str>) -> Session<&str> {
        Session {
            time: day * DAY,
            key,
        }
    }

    fn opts(lookback_days: i64, steps: usize, transform: PathTransform) -> Options {
        Options {
            lookback_micros: lookback_days * DAY,
            steps,
            transform,
            ..Options::default()
        }
    }

    #[test]
    fn a_path_is_the_lookback_window_before_its_session_then_the_session() {
        let sessions = [
            s(0, Some("a")),
            s(10, Some("b")),
            s(20, None),
            s(25, Some("c")),
            s(26, Some("d")),
        ];
        let conv = Conversion {
            session: 3,
            time: 25 * DAY,
        };
        let path = conversion_path(&sessions, &conv, &opts(15, 0, PathTransform::None));
        // a is 25 days before T: outside 15 days; b starts exactly 15 days before, so it is
        // in; the null key is dropped; d comes after S.
        assert_eq!(path.keys, vec!["b", "c"]);
        assert_eq!(path.raw, vec![("b", 10 * DAY), ("c", 25 * DAY)]);
    }

    #[test]
    fn the_steps_limit_keeps_the_last_positions_before_the_transform() {
        let sessions = [
            s(1, Some("a")),
            s(2, Some("b")),
            s(3, Some("b")),
            s(4, Some("c")),
        ];
        let conv = Conversion {
            session: 3,
            time: 4 * DAY,
        };
        let path = conversion_path(&sessions, &conv, &opts(30, 3, PathTransform::Exposure));
        assert_eq!(path.keys, vec!["b", "c"]);
        assert_eq!(path.raw.len(), 3);
    }

    #[test]
    fn the_transforms_collapse_repeats_keep_first_occurrences_or_keep_everything() {
        let keys = ["a", "a", "b", "a", "b", "b"];
        let t = |how| transform(keys.iter().copied(), how);
        assert_eq!(t(PathTransform::Exposure), vec!["a", "b", "a", "b"]);
        assert_eq!(t(PathTransform::First), vec!["a", "b"]);
        assert_eq!(t(PathTransform::None), keys.to_vec());
    }

    #[test]
    fn the_non_converting_path_starts_after_the_last_conversion() {
        let sessions = [
            s(0, Some("a")),
            s(1, Some("b")),
            s(2, Some("c")),
            s(40, Some("d")),
            s(50, Some("e")),
        ];
        let convs = [Conversion {
            session: 1,
            time: DAY,
        }];
        let path = non_converting_path(&sessions, &convs, &opts(30, 0, PathTransform::None));
        // c starts 48 days before e, the last of them: outside the 30 days.
        assert_eq!(path.map(|p| p.keys), Some(vec!["d", "e"]));
        let all = non_converting_path(&sessions, &[], &opts(100, 0, PathTransform::None));
        assert_eq!(all.map(|p| p.keys.len()), Some(5));
        let none = non_converting_path(
            &sessions,
            &[Conversion {
                session: 4,
                time: 50 * DAY,
            }],
            &opts(30, 0, PathTransform::None),
        );
        assert_eq!(none, None);
    }

    fn path<'a>(keys: &[&'a str]) -> Path<&'a str> {
        Path {
            raw: keys.iter().map(|k| (*k, 0)).collect(),
            keys: keys.to_vec(),
        }
    }

    #[test]
    fn position_based_gives_forty_percent_to_each_end_and_splits_the_rest() {
        let got = shares(Model::PositionBased, &path(&["a", "b", "c", "d"]), 0, 1.0);
        assert_eq!(
            got,
            vec![
                (Some("a"), 0.4),
                (Some("b"), 0.1),
                (Some("c"), 0.1),
                (Some("d"), 0.4)
            ]
        );
        assert_eq!(
            shares(Model::PositionBased, &path(&["a", "b"]), 0, 1.0),
            vec![(Some("a"), 0.5), (Some("b"), 0.5)]
        );
    }

    #[test]
    fn time_decay_halves_the_weight_per_half_life() {
        let p = Path {
            raw: vec![("a", 0), ("b", 7 * DAY), ("a", 14 * DAY)],
            keys: vec!["a", "b", "a"],
        };
        let got = shares(Model::TimeDecay, &p, 14 * DAY, (7 * DAY) as f64);
        // Weights 1/4, 1/2, 1 over 7/4.
        let want = [1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0];
        for ((_, g), w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?}");
        }
    }

    #[test]
    fn an_empty_path_gives_everything_to_the_null_touchpoint() {
        for model in [Model::FirstTouch, Model::Linear, Model::TimeDecay] {
            assert_eq!(
                shares(model, &Path::<&str>::default(), 0, 1.0),
                vec![(None, 1.0)]
            );
        }
    }
}
