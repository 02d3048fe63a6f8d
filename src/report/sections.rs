//! The sections of the report, each from its outputs: the run at a glance, the inputs, top
//! campaigns, channels, the weekly projection, the journey models and the accounting.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::prelude::SessionContext;
use serde_json::Value as Json;

use super::{charts, float, label, number_cell, rounded_cell, rows, text_cell, u64_at};
use super::{Cell, Chart, Section, Table};
use crate::error::Result;

/// How many keys the models' chart and the paths' table show per dimension.
const TOP_KEYS: usize = 8;
const TOP_PATHS: usize = 10;

/// `summary.json`'s sessions per channel, most first (as written).
fn sessions_by_channel(summary: Option<&Json>) -> Option<Vec<(Option<String>, Option<String>)>> {
    let list = summary?.get("sessions_by_channel")?.as_array()?;
    let row = |c: &Json| {
        let channel = c.get("channel_id")?;
        let n = c.get("sessions")?.as_u64()?;
        Some((channel.as_str().map(String::from), Some(n.to_string())))
    };
    list.iter().map(row).collect()
}

/// Run id, engine and the counts read and written, from `summary.json`.
pub(super) fn run_facts(summary: &Json) -> Vec<(String, String, Cell)> {
    let mut facts = Vec::new();
    for (key, label) in [("run_id", "Run"), ("engine", "Engine")] {
        if let Some(v) = summary.get(key).and_then(Json::as_str) {
            facts.push((key.replace('_', "-"), label.to_string(), Cell::text(v)));
        }
    }
    if let Some(options) = summary.get("options").and_then(Json::as_object) {
        let text: Vec<String> = options
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => format!("{k}={s}"),
                None => format!("{k}={v}"),
            })
            .collect();
        facts.push((
            "options".into(),
            "Options".into(),
            Cell::text(text.join(" ")),
        ));
    }
    if let Some(seconds) = summary.get("seconds").and_then(Json::as_f64) {
        let cell = Cell {
            text: format!("{seconds:.1} s"),
            value: seconds.to_string(),
            numeric: true,
        };
        facts.push(("duration".into(), "Duration".into(), cell));
    }
    for (id, key, label) in [
        ("events", "events", "Clickstream rows read"),
        ("purchase-rows", "purchase_rows", "Purchases rows read"),
        ("sessions", "sessions", "Sessions"),
        (
            "attributed-purchases",
            "attributed_purchases",
            "Purchases attributed",
        ),
    ] {
        if let Some(n) = u64_at(summary, &["counts", key]) {
            facts.push((id.into(), label.into(), Cell::number(&n.to_string())));
        }
    }
    facts
}

/// The input files: rows, size and rows quarantined, per file.
pub(super) fn inputs_section(summary: &Json) -> Option<Section> {
    let files = summary.get("input_files")?.as_object()?;
    let mut rows = Vec::new();
    for (kind, per_file) in files {
        let Some(per_file) = per_file.as_object() else {
            continue;
        };
        for (file, stats) in per_file {
            let n = |k: &str| stats.get(k).and_then(Json::as_u64);
            let cell =
                |v: Option<u64>| v.map_or_else(|| Cell::text(""), |v| Cell::number(&v.to_string()));
            rows.push(vec![
                Cell::text(kind.clone()),
                Cell::text(file.clone()),
                cell(n("rows")),
                cell(n("bytes")),
                cell(n("quarantined")),
            ]);
        }
    }
    let headers = ["input", "file", "rows", "bytes", "quarantined"];
    Some(Section {
        id: "inputs".into(),
        heading: "Inputs".into(),
        intro: None,
        charts: Vec::new(),
        tables: vec![Table {
            id: "input-files".into(),
            caption: "Files read".into(),
            headers: headers.map(String::from).to_vec(),
            rows,
            note: None,
        }],
    })
}

pub(super) async fn top_campaigns(ctx: &SessionContext) -> Result<Section> {
    let r = rows(
        ctx,
        "SELECT campaignId, revenue FROM top_campaigns ORDER BY revenue DESC, campaignId",
    )
    .await?;
    let labels: Vec<String> = r.iter().map(|r| label(&r[0])).collect();
    let values = r.iter().map(|r| float(&r[1])).collect();
    let title = "Top campaigns by confirmed revenue";
    let svg = charts::bars(
        title,
        &labels,
        &[charts::Series {
            name: "revenue".into(),
            values,
        }],
        "confirmed revenue",
    )?;
    Ok(Section {
        id: "top-campaigns".into(),
        heading: "Top campaigns".into(),
        intro: None,
        charts: vec![Chart {
            caption: title.into(),
            svg,
        }],
        tables: vec![Table {
            id: "top-campaigns-table".into(),
            caption: title.into(),
            headers: vec!["campaign".into(), "confirmed revenue".into()],
            rows: r
                .iter()
                .map(|r| vec![text_cell(&r[0]), number_cell(&r[1])])
                .collect(),
            note: None,
        }],
    })
}

/// Each channel's sessions and share of all sessions (a run's summary counts them), with the
/// sessions that led to an attributed purchase; and the top channel per campaign.
pub(super) async fn channels(
    ctx: &SessionContext,
    summary: Option<&Json>,
    top: bool,
    projection: bool,
) -> Result<Section> {
    let mut section = Section {
        id: "channels".into(),
        heading: "Channels".into(),
        intro: None,
        charts: Vec::new(),
        tables: Vec::new(),
    };
    let converting: BTreeMap<Option<String>, Option<String>> = if projection {
        rows(
            ctx,
            "SELECT channelId, COUNT(DISTINCT sessionId) AS n FROM purchases_attribution \
             GROUP BY channelId",
        )
        .await?
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
    } else {
        BTreeMap::new()
    };
    // Most sessions first; where only the projection is known, its sessions.
    let all: Vec<(Option<String>, Option<String>)> = match sessions_by_channel(summary) {
        Some(all) => all,
        None => {
            let mut r: Vec<_> = converting.clone().into_iter().collect();
            r.sort_by(|a, b| float(&b.1).total_cmp(&float(&a.1)).then(a.0.cmp(&b.0)));
            r
        }
    };
    let of_all = sessions_by_channel(summary).is_some();
    if !all.is_empty() {
        let total: f64 = all.iter().map(|r| float(&r.1)).sum();
        let total = if total > 0.0 { total } else { 1.0 };
        let labels: Vec<String> = all.iter().map(|r| label(&r.0)).collect();
        let shares: Vec<f64> = all.iter().map(|r| float(&r.1) / total).collect();
        let title = if of_all {
            "Channel share of all sessions"
        } else {
            "Channel share of the sessions with an attributed purchase"
        };
        section.charts.push(Chart {
            caption: title.into(),
            svg: charts::bars(
                title,
                &labels,
                &[charts::Series {
                    name: "share".into(),
                    values: shares.iter().map(|s| s * 100.0).collect(),
                }],
                "% of sessions",
            )?,
        });
        let mut headers = vec!["channel".into(), "sessions".into(), "share".into()];
        if of_all && projection {
            headers.push("sessions with an attributed purchase".into());
            headers.push("conversion".into());
        }
        let rows = all
            .iter()
            .zip(&shares)
            .map(|(r, s)| {
                let mut row = vec![text_cell(&r.0), number_cell(&r.1), Cell::share(*s)];
                if of_all && projection {
                    let n = converting.get(&r.0).cloned().flatten();
                    let rate = float(&n) / float(&r.1).max(1.0);
                    row.push(Cell::number(n.as_deref().unwrap_or("0")));
                    row.push(Cell::share(rate));
                }
                row
            })
            .collect();
        section.tables.push(Table {
            id: "channel-share".into(),
            caption: title.into(),
            headers,
            rows,
            note: None,
        });
    }
    if top {
        let r = rows(
            ctx,
            "SELECT campaignId, channelId, uniqueSessions FROM top_channels \
             ORDER BY uniqueSessions DESC, campaignId NULLS LAST",
        )
        .await?;
        section.tables.push(Table {
            id: "top-channels".into(),
            caption: "Top channel per campaign, by unique sessions".into(),
            headers: vec![
                "campaign".into(),
                "channel".into(),
                "unique sessions".into(),
            ],
            rows: r
                .iter()
                .map(|r| vec![text_cell(&r[0]), text_cell(&r[1]), number_cell(&r[2])])
                .collect(),
            note: None,
        });
    }
    Ok(section)
}

pub(super) async fn weekly(ctx: &SessionContext) -> Result<Section> {
    let r = rows(
        ctx,
        "SELECT isoWeek, MIN(weekStart) AS s, SUM(purchases), SUM(confirmedPurchases), \
         SUM(confirmedRevenue) FROM weekly GROUP BY isoWeek ORDER BY s",
    )
    .await?;
    let labels: Vec<String> = r.iter().map(|r| label(&r[0])).collect();
    let revenue: Vec<f64> = r.iter().map(|r| float(&r[4])).collect();
    let purchases: Vec<f64> = r.iter().map(|r| float(&r[2])).collect();
    let rev_title = "Confirmed revenue per ISO week";
    let n_title = "Purchases per ISO week";
    Ok(Section {
        id: "weekly".into(),
        heading: "Weekly projection".into(),
        intro: None,
        charts: vec![
            Chart {
                caption: rev_title.into(),
                svg: charts::line(rev_title, &labels, &revenue, "confirmed revenue")?,
            },
            Chart {
                caption: n_title.into(),
                svg: charts::line(n_title, &labels, &purchases, "purchases")?,
            },
        ],
        tables: vec![Table {
            id: "weekly-table".into(),
            caption: "Per ISO week, every campaign".into(),
            headers: [
                "ISO week",
                "week start",
                "purchases",
                "confirmed",
                "confirmed revenue",
            ]
            .map(String::from)
            .to_vec(),
            rows: r
                .iter()
                .map(|r| {
                    vec![
                        text_cell(&r[0]),
                        text_cell(&r[1]),
                        number_cell(&r[2]),
                        number_cell(&r[3]),
                        number_cell(&r[4]),
                    ]
                })
                .collect(),
            note: None,
        }],
    })
}

/// Revenue credit per model side by side for the top keys, ROAS when spend was given, the
/// most frequent conversion paths.
pub(super) async fn models(ctx: &SessionContext, paths: bool) -> Result<Section> {
    let r = rows(
        ctx,
        "SELECT dimension, model, touchpoint, revenue, spend, roas FROM attribution_models \
         ORDER BY dimension, model, touchpoint NULLS LAST",
    )
    .await?;
    let mut section = Section {
        id: "models".into(),
        heading: "Journey attribution models".into(),
        intro: Some(
            "Revenue credited to each touchpoint by each model (docs/journeys.md); the keys \
             with the most credit on average over the models."
                .into(),
        ),
        charts: Vec::new(),
        tables: Vec::new(),
    };
    // dimension → key → model → (revenue text, spend, roas)
    type Credit = (Option<String>, Option<String>, Option<String>);
    let mut by_dim: BTreeMap<String, BTreeMap<Option<String>, BTreeMap<String, Credit>>> =
        BTreeMap::new();
    let mut model_names = BTreeSet::new();
    for row in &r {
        let (Some(dim), Some(model)) = (&row[0], &row[1]) else {
            continue;
        };
        model_names.insert(model.clone());
        by_dim
            .entry(dim.clone())
            .or_default()
            .entry(row[2].clone())
            .or_default()
            .insert(
                model.clone(),
                (row[3].clone(), row[4].clone(), row[5].clone()),
            );
    }
    let model_names: Vec<String> = model_names.into_iter().collect();
    for (dim, keys) in &by_dim {
        let mut ranked: Vec<(&Option<String>, f64)> = keys
            .iter()
            .map(|(k, m)| {
                let sum: f64 = m.values().map(|c| float(&c.0)).sum();
                (k, sum / m.len().max(1) as f64)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let shown: Vec<&Option<String>> = ranked.iter().take(TOP_KEYS).map(|(k, _)| *k).collect();
        let labels: Vec<String> = shown.iter().map(|k| label(k)).collect();
        let series: Vec<charts::Series> = model_names
            .iter()
            .map(|m| charts::Series {
                name: m.clone(),
                values: shown
                    .iter()
                    .map(|k| keys[*k].get(m).map_or(0.0, |c| float(&c.0)))
                    .collect(),
            })
            .collect();
        let title = format!("Revenue credit per model, top {dim}s");
        section.charts.push(Chart {
            caption: title.clone(),
            svg: charts::bars(&title, &labels, &series, "revenue credited")?,
        });
        let with_spend = shown
            .iter()
            .any(|k| keys[*k].values().any(|c| c.1.is_some()));
        let mut headers = vec![dim.clone()];
        headers.extend(model_names.iter().cloned());
        if with_spend {
            headers.push("spend".into());
            headers.extend(model_names.iter().map(|m| format!("ROAS {m}")));
        }
        let rows = shown
            .iter()
            .map(|k| {
                let credits = &keys[*k];
                let mut row = vec![text_cell(k)];
                for m in &model_names {
                    row.push(
                        credits
                            .get(m)
                            .map_or_else(Cell::null, |c| rounded_cell(&c.0, 2)),
                    );
                }
                if with_spend {
                    let spend = credits.values().find_map(|c| c.1.clone());
                    row.push(number_cell(&spend));
                    for m in &model_names {
                        row.push(
                            credits
                                .get(m)
                                .map_or_else(Cell::null, |c| rounded_cell(&c.2, 2)),
                        );
                    }
                }
                row
            })
            .collect();
        section.tables.push(Table {
            id: format!("models-{dim}"),
            caption: title,
            headers,
            rows,
            note: (keys.len() > shown.len()).then(|| {
                format!(
                    "{} more {dim}s in attribution_models.",
                    keys.len() - shown.len()
                )
            }),
        });
    }
    if paths {
        let r = rows(
            ctx,
            &format!(
                "SELECT dimension, path, conversions, nonConversions, revenue FROM ( \
                   SELECT *, ROW_NUMBER() OVER (PARTITION BY dimension \
                     ORDER BY conversions DESC, path NULLS LAST) AS n FROM conversion_paths) \
                 WHERE n <= {TOP_PATHS} ORDER BY dimension, n"
            ),
        )
        .await?;
        let dims: BTreeSet<String> = r.iter().filter_map(|r| r[0].clone()).collect();
        for dim in dims {
            section.tables.push(Table {
                id: format!("paths-{dim}"),
                caption: format!("Most frequent conversion paths, by {dim}"),
                headers: ["path", "conversions", "non-conversions", "revenue"]
                    .map(String::from)
                    .to_vec(),
                rows: r
                    .iter()
                    .filter(|r| r[0].as_deref() == Some(dim.as_str()))
                    .map(|r| {
                        vec![
                            r[1].as_deref()
                                .map_or_else(|| Cell::text("(empty path)"), Cell::text),
                            number_cell(&r[2]),
                            number_cell(&r[3]),
                            number_cell(&r[4]),
                        ]
                    })
                    .collect(),
                note: None,
            });
        }
    }
    Ok(section)
}

/// Read → used → each reason rows were left out; quarantined rows per file with their first
/// reasons.
pub(super) async fn accounting(
    ctx: &SessionContext,
    summary: &Json,
    rejected: bool,
) -> Result<Option<Section>> {
    let Some(counts) = summary.get("counts") else {
        return Ok(None);
    };
    let n = |k: &str| counts.get(k).and_then(Json::as_u64).unwrap_or(0);
    // The parts' names are shared by both inputs where they mean the same (one color each).
    let clickstream = [
        ("used (not purchase events)", n("non_purchase_events")),
        ("attributed", n("attributed_purchases")),
        ("outside any session", n("purchase_events_outside_session")),
        (
            "superseded by an earlier event",
            n("purchase_events_superseded"),
        ),
        (
            "without a purchases row",
            n("purchase_events_without_purchase"),
        ),
        ("duplicate", n("duplicate_events")),
        ("bad row, quarantined", n("events_quarantined")),
    ];
    let purchases = [
        ("attributed", n("attributed_purchases")),
        ("without a purchase event", n("purchases_without_event")),
        ("duplicate", n("duplicate_purchases")),
        ("bad row, quarantined", n("purchase_rows_quarantined")),
    ];
    let mut tables = Vec::new();
    let mut bars = Vec::new();
    for (id, what, read, parts) in [
        (
            "accounting-clickstream",
            "clickstream",
            n("events"),
            &clickstream[..],
        ),
        (
            "accounting-purchases",
            "purchases",
            n("purchase_rows"),
            &purchases[..],
        ),
    ] {
        let mut rows = vec![vec![Cell::text("read"), Cell::number(&read.to_string())]];
        rows.extend(
            parts
                .iter()
                .map(|(label, v)| vec![Cell::text(*label), Cell::number(&v.to_string())]),
        );
        tables.push(Table {
            id: id.into(),
            caption: format!("{what}: every row read, where it went"),
            headers: vec!["rows".into(), "count".into()],
            rows,
            note: None,
        });
        bars.push((
            what.to_string(),
            parts
                .iter()
                .map(|(l, v)| (l.to_string(), *v as f64))
                .collect::<Vec<_>>(),
        ));
    }
    let title = "Where the rows read went: used, or the reason they were left out";
    let charts_out = vec![Chart {
        caption: title.into(),
        svg: charts::split_bars(title, &bars)?,
    }];
    if rejected {
        let r = rows(
            ctx,
            "SELECT file, COUNT(*) AS n, \
             array_to_string(array_slice(array_agg(concat('line ', line, ': ', reason) ORDER BY CAST(line AS BIGINT)), 1, 3), ' | ') \
             FROM rejected GROUP BY file ORDER BY file",
        )
        .await?;
        tables.push(Table {
            id: "quarantined".into(),
            caption: "Quarantined rows per file, with the first reasons".into(),
            headers: vec!["file".into(), "rows".into(), "first reasons".into()],
            rows: r
                .iter()
                .map(|r| vec![text_cell(&r[0]), number_cell(&r[1]), text_cell(&r[2])])
                .collect(),
            note: Some("Every quarantined row, verbatim, is in _rejected/.".into()),
        });
    }
    Ok(Some(Section {
        id: "accounting".into(),
        heading: "Accounting".into(),
        intro: Some(
            "Every row read is used or left out for one reason; nothing is dropped silently."
                .into(),
        ),
        charts: charts_out,
        tables,
    }))
}
