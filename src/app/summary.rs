//! The run summary: what was read, what was used, and what was left out and why.
//!
//! Written as `summary.json` next to the outputs. Every clickstream row and every purchases row
//! is accounted for, and [`Counts::check`] verifies the identities below; a mismatch is a bug
//! and fails the run rather than producing outputs nobody can trust.
//!
//! Clickstream rows:
//! `events = events_quarantined + duplicate_events + non_purchase_events + purchase_events` and
//! `purchase_events = purchase_events_outside_session + purchase_events_superseded
//!                   + purchase_events_without_purchase + attributed_purchases`.
//! Sessions: `sessions` = the distinct `app_open` events (each opens one, rule 2), also per
//! channel in [`Summary::sessions_by_channel`].
//! Purchases rows:
//! `purchase_rows = purchase_rows_quarantined + duplicate_purchases + purchases_without_event
//!                + attributed_purchases`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attribution::Outcomes;
use crate::error::{Error, Result};
use crate::input::{FileStats, IngestStats, Opens};

/// The counts of rule 8 and the totals they add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Clickstream rows read.
    pub events: u64,
    /// Purchases rows read.
    pub purchase_rows: u64,
    /// Rows of the projection.
    pub attributed_purchases: u64,
    /// Bad clickstream rows written to `_rejected/` (`--on-bad-rows quarantine`).
    pub events_quarantined: u64,
    /// Bad purchases rows written to `_rejected/`.
    pub purchase_rows_quarantined: u64,
    pub duplicate_events: u64,
    pub duplicate_purchases: u64,
    /// Distinct events whose eventType is not `purchase`.
    pub non_purchase_events: u64,
    /// Distinct purchase events.
    pub purchase_events: u64,
    pub purchase_events_outside_session: u64,
    pub purchase_events_superseded: u64,
    pub purchase_events_without_purchase: u64,
    /// Distinct purchases that no in-session purchase event attributes.
    pub purchases_without_event: u64,
    /// Sessions: distinct `app_open` events (rule 2).
    #[serde(default)]
    pub sessions: u64,
}

/// The sessions opened with one channel_id (`None`: the app_open has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSessions {
    pub channel_id: Option<String>,
    pub sessions: u64,
}

/// The sessions per channel: the decoded `app_open` rows less their duplicates, per the rows'
/// own channel_id (each row is kept or a duplicate); most sessions first, then by channel.
pub fn sessions_by_channel(opens: &Opens, o: &Outcomes) -> Result<Vec<ChannelSessions>> {
    let mut counts = opens.counts();
    for (channel, duplicates) in &o.duplicate_opens {
        let read = counts.entry(channel.clone()).or_default();
        *read = read.checked_sub(*duplicates).ok_or_else(|| {
            Error::Accounting(format!(
                "{duplicates} duplicate app_open rows of channel {channel:?} but {read} read"
            ))
        })?;
    }
    let mut out: Vec<ChannelSessions> = counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(channel_id, sessions)| ChannelSessions {
            channel_id,
            sessions,
        })
        .collect();
    out.sort_by(|a, b| {
        b.sessions
            .cmp(&a.sessions)
            .then_with(|| a.channel_id.cmp(&b.channel_id))
    });
    Ok(out)
}

impl Counts {
    /// Combines what the decoders read with what the transform decided, and checks that every
    /// row is accounted for.
    pub fn new(
        events_read: FileStats,
        purchases_read: FileStats,
        opens: &Opens,
        o: &Outcomes,
    ) -> Result<Counts> {
        let mismatch = |what: String| Err(Error::Accounting(what));
        if purchases_read.decoded() != o.duplicate_purchases + o.distinct_purchases {
            return mismatch(format!(
                "{} purchases rows decoded but {} duplicates + {} distinct purchases",
                purchases_read.decoded(),
                o.duplicate_purchases,
                o.distinct_purchases
            ));
        }
        if events_read.purchase_type_rows != o.purchase_events + o.duplicate_purchase_type_rows {
            return mismatch(format!(
                "{} purchase rows read in the clickstream but {} distinct purchase events + {} duplicates",
                events_read.purchase_type_rows, o.purchase_events, o.duplicate_purchase_type_rows
            ));
        }
        let non_purchase_rows = events_read.decoded() - events_read.purchase_type_rows;
        let duplicate_non_purchase = o.duplicate_events - o.duplicate_purchase_type_rows;
        if duplicate_non_purchase > non_purchase_rows
            || o.attributed_purchases > o.distinct_purchases
        {
            return mismatch(format!(
                "{} duplicate non-purchase rows of {non_purchase_rows} read; {} attributed of {} purchases",
                duplicate_non_purchase, o.attributed_purchases, o.distinct_purchases
            ));
        }
        let counts = Counts {
            events: events_read.rows,
            purchase_rows: purchases_read.rows,
            attributed_purchases: o.attributed_purchases,
            events_quarantined: events_read.quarantined,
            purchase_rows_quarantined: purchases_read.quarantined,
            duplicate_events: o.duplicate_events,
            duplicate_purchases: o.duplicate_purchases,
            non_purchase_events: non_purchase_rows - duplicate_non_purchase,
            purchase_events: o.purchase_events,
            purchase_events_outside_session: o.purchase_events_outside_session,
            purchase_events_superseded: o.purchase_events_superseded,
            purchase_events_without_purchase: o.purchase_events_without_purchase,
            purchases_without_event: o.distinct_purchases - o.attributed_purchases,
            sessions: sessions_by_channel(opens, o)?
                .iter()
                .map(|c| c.sessions)
                .sum(),
        };
        counts.check()?;
        Ok(counts)
    }

    /// Verifies the identities of the module documentation.
    pub fn check(&self) -> Result<()> {
        let used_events = self.purchase_events_outside_session
            + self.purchase_events_superseded
            + self.purchase_events_without_purchase
            + self.attributed_purchases;
        if used_events != self.purchase_events {
            return Err(Error::Accounting(format!(
                "purchase events: {} distinct but {used_events} with an outcome",
                self.purchase_events
            )));
        }
        let events = self.events_quarantined
            + self.duplicate_events
            + self.non_purchase_events
            + self.purchase_events;
        if events != self.events {
            return Err(Error::Accounting(format!(
                "clickstream: {} rows read but {events} accounted for",
                self.events
            )));
        }
        let purchases = self.purchase_rows_quarantined
            + self.duplicate_purchases
            + self.purchases_without_event
            + self.attributed_purchases;
        if purchases != self.purchase_rows {
            return Err(Error::Accounting(format!(
                "purchases: {} rows read but {purchases} accounted for",
                self.purchase_rows
            )));
        }
        Ok(())
    }

    /// One line per left-out reason, for the log.
    pub fn left_out(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("bad clickstream rows quarantined", self.events_quarantined),
            (
                "bad purchases rows quarantined",
                self.purchase_rows_quarantined,
            ),
            ("duplicate events", self.duplicate_events),
            ("duplicate purchases rows", self.duplicate_purchases),
            (
                "purchase events outside any session",
                self.purchase_events_outside_session,
            ),
            (
                "purchase events superseded by an earlier one",
                self.purchase_events_superseded,
            ),
            (
                "purchase events without a purchases row",
                self.purchase_events_without_purchase,
            ),
            (
                "purchases rows without a purchase event",
                self.purchases_without_event,
            ),
        ]
    }
}

/// Rows read per input file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputFiles {
    pub clickstream: BTreeMap<String, FileStats>,
    pub purchases: BTreeMap<String, FileStats>,
    /// Marketing spend files (`--spend`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub spend: BTreeMap<String, FileStats>,
}

impl InputFiles {
    pub fn new(clickstream: &IngestStats, purchases: &IngestStats) -> Self {
        InputFiles {
            clickstream: clickstream.per_file(),
            purchases: purchases.per_file(),
            spend: BTreeMap::new(),
        }
    }

    /// The files under `root` named `label/…` instead: the built-in dataset lives in a
    /// temporary directory, whose paths would name nothing once the run is over.
    pub fn relabel(&mut self, root: &std::path::Path, label: &str) {
        let root = root.display().to_string();
        for files in [&mut self.clickstream, &mut self.purchases] {
            *files = std::mem::take(files)
                .into_iter()
                .map(|(name, stats)| match name.strip_prefix(&root) {
                    Some(rest) => (format!("{label}{rest}"), stats),
                    None => (name, stats),
                })
                .collect();
        }
    }
}

/// The whole `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub engine: crate::attribution::Engine,
    pub counts: Counts,
    pub input_files: InputFiles,
    /// Output datasets and their row counts.
    pub outputs: BTreeMap<String, u64>,
    /// Per dimension, the journeys' counts (`--models`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journeys: Option<BTreeMap<String, crate::journeys::Counts>>,
    /// The sessions per channel_id (their sum is `counts.sessions`).
    pub sessions_by_channel: Vec<ChannelSessions>,
    /// The options of the run worth showing beside its figures (the report shows them).
    pub options: serde_json::Map<String, serde_json::Value>,
    /// Seconds from the job's start to its summary.
    pub seconds: f64,
}

/// The options of a run worth showing beside its figures.
pub fn run_options(settings: &super::Settings) -> serde_json::Map<String, serde_json::Value> {
    let mut o = serde_json::Map::new();
    o.insert("threads".into(), serde_json::json!(settings.threads));
    let memory = settings
        .memory_limit
        .map_or("none".to_string(), |m| format!("{} MiB", m >> 20));
    o.insert("memory_limit".into(), serde_json::json!(memory));
    o.insert(
        "on_bad_rows".into(),
        serde_json::json!(format!("{:?}", settings.on_bad_rows).to_lowercase()),
    );
    if let Some(j) = &settings.journeys {
        let models: Vec<&str> = j.models.iter().map(|m| m.name()).collect();
        o.insert("models".into(), serde_json::json!(models.join(",")));
    }
    if settings.cluster.is_some() {
        o.insert("cluster".into(), serde_json::json!(true));
    }
    o
}
