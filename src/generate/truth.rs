//! The ground truth of a generated dataset, built while generating and written in the
//! canonical format. Marts are computed here with plain maps, independently of the pipeline.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::{Id, PurchaseRow};
use crate::app::summary::Counts;
use crate::canonical::{
    field, format_cents, PROJECTION_HEADER, TOP_CAMPAIGNS_HEADER, TOP_CHANNELS_HEADER,
};
use crate::error::{Error, Result};
use crate::input::values::format_timestamp_micros;

/// One row of the expected projection.
#[derive(Debug, Clone)]
pub struct TruthRow {
    pub purchase_id: Id,
    pub purchase: PurchaseRow,
    pub session_id: Id,
    pub campaign_id: Option<String>,
    pub channel_id: Option<String>,
    /// eventTime of the purchase event that attributes it.
    pub event_time: i64,
}

/// A session as generated: its user, its app_open, the open's time and keys.
#[derive(Debug, Clone)]
pub struct TruthSession {
    pub user_id: Id,
    pub session_id: Id,
    pub time: i64,
    pub campaign_id: Option<String>,
    pub channel_id: Option<String>,
}

/// What the pipeline must compute from the generated data.
#[derive(Debug, Default)]
pub struct Truth {
    pub counts: Counts,
    pub rows: Vec<TruthRow>,
    /// Every session, for the journey models' reference implementation (tests).
    pub sessions: Vec<TruthSession>,
}

impl Truth {
    /// Records that `purchase_id` is attributed to the session opened by `session_id`.
    pub(super) fn attribute(
        &mut self,
        purchase_id: Id,
        purchase: PurchaseRow,
        session_id: Id,
        campaign_id: Option<String>,
        channel_id: Option<String>,
        event_time: i64,
    ) {
        self.counts.attributed_purchases += 1;
        self.rows.push(TruthRow {
            purchase_id,
            purchase,
            session_id,
            campaign_id,
            channel_id,
            event_time,
        });
    }

    /// The sessions per channel_id, as `summary.json` gives them.
    pub fn sessions_by_channel(&self) -> Vec<crate::app::summary::ChannelSessions> {
        let mut per: BTreeMap<Option<String>, u64> = BTreeMap::new();
        for s in &self.sessions {
            *per.entry(s.channel_id.clone()).or_default() += 1;
        }
        let mut out: Vec<_> = per
            .into_iter()
            .map(
                |(channel_id, sessions)| crate::app::summary::ChannelSessions {
                    channel_id,
                    sessions,
                },
            )
            .collect();
        out.sort_by(|a, b| {
            b.sessions
                .cmp(&a.sessions)
                .then_with(|| a.channel_id.cmp(&b.channel_id))
        });
        out
    }

    /// Sessions in CSV: `userId,sessionId,time,campaignId,channelId`, in generation order.
    pub fn sessions_csv(&self) -> String {
        let mut out = String::from("userId,sessionId,time,campaignId,channelId\n");
        for s in &self.sessions {
            out.push_str(&format!(
                "{},{},{},{},{}\n",
                s.user_id.as_str(),
                s.session_id.as_str(),
                format_timestamp_micros(s.time),
                s.campaign_id.as_deref().map(field).unwrap_or_default(),
                s.channel_id.as_deref().map(field).unwrap_or_default(),
            ));
        }
        out
    }

    /// The attributed purchases with their session and the attributing event's time, in CSV:
    /// `purchaseId,sessionId,eventTime,billingCost,isConfirmed,purchaseTime`.
    pub fn conversions_csv(&self) -> String {
        let mut out =
            String::from("purchaseId,sessionId,eventTime,billingCost,isConfirmed,purchaseTime\n");
        for r in &self.rows {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                r.purchase_id.as_str(),
                r.session_id.as_str(),
                format_timestamp_micros(r.event_time),
                format_cents(r.purchase.cents as i128),
                r.purchase.confirmed,
                format_timestamp_micros(r.purchase.time),
            ));
        }
        out
    }

    /// The projection in canonical CSV.
    pub fn attribution_csv(&self) -> String {
        let mut rows: Vec<&TruthRow> = self.rows.iter().collect();
        rows.sort_by_key(|r| r.purchase_id);
        let mut out = format!("{PROJECTION_HEADER}\n");
        for r in rows {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                r.purchase_id.as_str(),
                format_timestamp_micros(r.purchase.time),
                format_cents(r.purchase.cents as i128),
                r.purchase.confirmed,
                r.session_id.as_str(),
                r.campaign_id.as_deref().map(field).unwrap_or_default(),
                r.channel_id.as_deref().map(field).unwrap_or_default(),
            ));
        }
        out
    }

    /// Top 10 campaigns by confirmed revenue, in canonical CSV.
    pub fn top_campaigns_csv(&self) -> String {
        let mut revenue: HashMap<&str, i128> = HashMap::new();
        for r in &self.rows {
            if let (Some(c), true) = (&r.campaign_id, r.purchase.confirmed) {
                *revenue.entry(c).or_default() += r.purchase.cents as i128;
            }
        }
        let mut ranked: Vec<(&str, i128)> = revenue.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut out = format!("{TOP_CAMPAIGNS_HEADER}\n");
        for (c, cents) in ranked.into_iter().take(10) {
            out.push_str(&format!("{},{}\n", field(c), format_cents(cents)));
        }
        out
    }

    /// The top channel of every campaign by distinct sessions, in canonical CSV.
    pub fn top_channels_csv(&self) -> String {
        let mut sessions: HashMap<(&str, &str), HashSet<Id>> = HashMap::new();
        for r in &self.rows {
            if let (Some(c), Some(ch)) = (&r.campaign_id, &r.channel_id) {
                sessions.entry((c, ch)).or_default().insert(r.session_id);
            }
        }
        let mut best: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
        for ((c, ch), s) in &sessions {
            let n = s.len();
            let e = best.entry(c).or_insert((ch, n));
            if n > e.1 || (n == e.1 && *ch < e.0) {
                *e = (ch, n);
            }
        }
        let mut out = format!("{TOP_CHANNELS_HEADER}\n");
        for (c, (ch, n)) in best {
            out.push_str(&format!("{},{},{n}\n", field(c), field(ch)));
        }
        out
    }

    /// Writes `attribution.csv`, `top_campaigns.csv`, `top_channels.csv`, `counts.json`, and
    /// `sessions.csv` and `conversions.csv` for the journey models.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let files = [
            ("attribution.csv", self.attribution_csv()),
            ("top_campaigns.csv", self.top_campaigns_csv()),
            ("top_channels.csv", self.top_channels_csv()),
            ("sessions.csv", self.sessions_csv()),
            ("conversions.csv", self.conversions_csv()),
            (
                "sessions_by_channel.json",
                serde_json::to_string_pretty(&self.sessions_by_channel())? + "\n",
            ),
            (
                "counts.json",
                serde_json::to_string_pretty(&Counts {
                    sessions: self.sessions.len() as u64,
                    ..self.counts.clone()
                })? + "\n",
            ),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }
}
