//! Synthetic data in exactly the format of the real exports, with their mess, and the ground
//! truth of what the pipeline must compute from it.
//!
//! The truth is known by construction: the generator decides which session every purchase
//! event belongs to as it writes it, so it never runs the sessionization rules (or any code of
//! the pipeline) to find out. That makes "pipeline output == truth" a real check.
//!
//! Output, for `--files K`: `mobile_app_clickstream_{0..K}.csv.gz`,
//! `user_purchases_{0..K}.csv.gz` and, with `truth`, `truth/{attribution,top_campaigns,
//! top_channels}.csv` and `truth/counts.json` in the canonical format (see `crate::canonical`).
//!
//! Every user draws from their own random stream (seed, user number), so the dataset is the
//! same for a seed whatever else changes.

mod truth;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::input::values::{civil_from_days, days_from_civil};
pub use truth::Truth;

/// How much of each kind of mess to put in. Rates are probabilities per occasion.
#[derive(Debug, Clone, PartialEq)]
pub struct Mess {
    /// A session ends without app_close (closed by the next app_open, or never).
    pub unclosed: f64,
    /// A purchase event whose purchase has no purchases row.
    pub event_without_purchase: f64,
    /// Extra purchases rows with no purchase event, per purchase.
    pub purchase_without_event: f64,
    /// A clickstream row written twice (sometimes re-sent later or in the other attribute style).
    pub duplicate_event: f64,
    /// A purchases row written twice (sometimes a stale earlier version).
    pub duplicate_purchase: f64,
    /// A purchase event between sessions (after an app_close or before the first app_open).
    pub outside_session: f64,
    /// A purchase event sent again later in the same session with the same purchase_id.
    pub resent_purchase: f64,
    /// A user whose events are spread over several files.
    pub split_user: f64,
    /// An app_open without campaign and channel.
    pub no_campaign: f64,
    /// Rows of a user written out of time order.
    pub shuffle: bool,
    /// Variations of the text: unpadded hours, fractions, thousands separators, other
    /// spellings of booleans, both attribute styles, doubled braces, short rows, other column
    /// orders.
    pub format_variants: bool,
}

impl Mess {
    /// The mess the real exports have, and then some.
    pub fn messy() -> Mess {
        Mess {
            unclosed: 0.1,
            event_without_purchase: 0.1,
            purchase_without_event: 0.1,
            duplicate_event: 0.02,
            duplicate_purchase: 0.03,
            outside_session: 0.05,
            resent_purchase: 0.03,
            split_user: 0.3,
            no_campaign: 0.02,
            shuffle: true,
            format_variants: true,
        }
    }

    /// No mess at all: every session closed, every purchase matched, no duplicates.
    pub fn clean() -> Mess {
        Mess {
            unclosed: 0.0,
            event_without_purchase: 0.0,
            purchase_without_event: 0.0,
            duplicate_event: 0.0,
            duplicate_purchase: 0.0,
            outside_session: 0.0,
            resent_purchase: 0.0,
            split_user: 0.0,
            no_campaign: 0.0,
            shuffle: false,
            format_variants: false,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    pub users: u64,
    /// Number of clickstream files, and of purchases files.
    pub files: usize,
    pub seed: u64,
    /// Sessions per user are drawn from 1..=max_sessions.
    pub max_sessions: u32,
    /// First day of activity (days since 1970-01-01).
    pub start_day: i64,
    /// Days of activity.
    pub days: u32,
    /// Distinct campaigns.
    pub campaigns: u32,
    pub mess: Mess,
    /// Also write the ground truth.
    pub truth: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            users: 1000,
            files: 4,
            seed: 42,
            max_sessions: 4,
            start_day: days_from_civil(2020, 8, 25),
            days: 100,
            campaigns: 60,
            mess: Mess::messy(),
            truth: true,
        }
    }
}

const CHANNELS: [&str; 5] = [
    "Facebook Ads",
    "Google Ads",
    "Twitter Ads",
    "VK Ads",
    "Yandex Ads",
];
const SECOND: i64 = 1_000_000;

/// What was written.
#[derive(Debug, Clone)]
pub struct Generated {
    pub clickstream_dir: PathBuf,
    pub purchases_dir: PathBuf,
    pub truth_dir: Option<PathBuf>,
    /// `marketing_spend/marketing_spend.csv`: daily spend per campaign and channel.
    pub spend_file: PathBuf,
    pub events: u64,
    pub purchase_rows: u64,
}

type Gz = GzEncoder<BufWriter<File>>;

/// A 36-byte lowercase UUID, drawn from the user's random stream.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id([u8; 36]);

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Id {
    fn random(rng: &mut impl RngCore) -> Id {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut out = [0u8; 36];
        uuid.hyphenated().encode_lower(&mut out);
        Id(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// One clickstream row to write.
struct Event {
    id: Id,
    kind: &'static str,
    time: i64,
    /// Attribute text as it appears in the field (before CSV quoting).
    attributes: String,
}

/// Per-file output state.
struct ClickFile {
    out: Gz,
    /// Column order of this file: false = userId,eventId,eventType,eventTime,attributes;
    /// true = eventTime before eventType.
    time_first: bool,
}

/// Writes a dataset as the directory `out`, replacing it as a whole (like any output: see
/// `claim`), so a smaller dataset never mixes with the files of an earlier, larger one. A
/// directory this program did not write is replaced only with `overwrite`.
pub fn generate_output(opts: &Options, out: &Path, overwrite: bool) -> Result<Generated> {
    let settings = crate::app::Settings {
        overwrite,
        ..Default::default()
    };
    let job = crate::app::job::JobRun::claim(&settings, out, &[])?;
    let g = generate(opts, job.dir())?;
    job.commit()?;
    let moved = |p: PathBuf| out.join(p.file_name().unwrap_or_default());
    Ok(Generated {
        clickstream_dir: moved(g.clickstream_dir),
        purchases_dir: moved(g.purchases_dir),
        truth_dir: g.truth_dir.map(moved),
        spend_file: out.join("marketing_spend").join("marketing_spend.csv"),
        ..g
    })
}

/// Writes a dataset into `out` (a fresh directory: files there of the same names are replaced).
pub fn generate(opts: &Options, out: &Path) -> Result<Generated> {
    if opts.files == 0 || opts.max_sessions == 0 || opts.days == 0 || opts.campaigns == 0 {
        return Err(Error::Config(
            "generate: --files, --max-sessions, --days and --campaigns must be at least 1".into(),
        ));
    }
    let clickstream_dir = out.join("mobile_app_clickstream");
    let purchases_dir = out.join("user_purchases");
    for d in [&clickstream_dir, &purchases_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let open = |path: PathBuf| -> Result<Gz> {
        let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(GzEncoder::new(
            BufWriter::with_capacity(1 << 20, f),
            flate2::Compression::fast(),
        ))
    };
    let mut click_files = Vec::new();
    let mut purchase_files = Vec::new();
    for k in 0..opts.files {
        let time_first = opts.mess.format_variants && k % 3 == 2;
        let mut f = ClickFile {
            out: open(clickstream_dir.join(format!("mobile_app_clickstream_{k}.csv.gz")))?,
            time_first,
        };
        let header: &[u8] = if time_first {
            b"userId,eventId,eventTime,eventType,attributes\r\n"
        } else {
            b"userId,eventId,eventType,eventTime,attributes\r\n"
        };
        f.out
            .write_all(header)
            .map_err(|e| Error::io(&clickstream_dir, e))?;
        click_files.push(f);
        let mut p = open(purchases_dir.join(format!("user_purchases_{k}.csv.gz")))?;
        p.write_all(b"purchaseId,purchaseTime,billingCost,isConfirmed\r\n")
            .map_err(|e| Error::io(&purchases_dir, e))?;
        purchase_files.push(p);
    }

    let mut truth = Truth::default();
    let mut rows: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut purchase_rows: Vec<(usize, Vec<u8>)> = Vec::new();
    for user in 0..opts.users {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        rng.set_stream(user);
        rows.clear();
        purchase_rows.clear();
        generate_user(
            opts,
            &mut rng,
            &mut truth,
            &click_files,
            &mut rows,
            &mut purchase_rows,
        );
        if opts.mess.shuffle {
            rows.shuffle(&mut rng);
        }
        for (file, row) in &rows {
            click_files[*file]
                .out
                .write_all(row)
                .map_err(|e| Error::io(&clickstream_dir, e))?;
        }
        for (file, row) in &purchase_rows {
            purchase_files[*file]
                .write_all(row)
                .map_err(|e| Error::io(&purchases_dir, e))?;
        }
    }
    for f in click_files {
        f.out
            .finish()
            .and_then(|mut w| w.flush())
            .map_err(|e| Error::io(&clickstream_dir, e))?;
    }
    for f in purchase_files {
        f.finish()
            .and_then(|mut w| w.flush())
            .map_err(|e| Error::io(&purchases_dir, e))?;
    }
    let truth_dir = if opts.truth {
        let dir = out.join("truth");
        truth.write(&dir)?;
        Some(dir)
    } else {
        None
    };
    let spend_file = write_spend(opts, &out.join("marketing_spend"))?;
    Ok(Generated {
        clickstream_dir,
        purchases_dir,
        truth_dir,
        spend_file,
        events: truth.counts.events,
        purchase_rows: truth.counts.purchase_rows,
    })
}

/// Daily spend per campaign over the generated days, each campaign on the channels it buys
/// that day (some rows name no channel), amounts with thousands separators now and then.
/// Drawn from a stream of its own, so the clickstream and purchases do not depend on it.
fn write_spend(opts: &Options, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join("marketing_spend.csv");
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5be4d);
    let mut text = String::from("date,campaignId,channelId,spend\n");
    for day in 0..opts.days as i64 {
        let (y, m, d) = civil_from_days(opts.start_day + day);
        for campaign in 1..=opts.campaigns {
            for channel in CHANNELS {
                if !rng.random_bool(0.3) {
                    continue;
                }
                let cents: i64 = rng.random_range(0..250_000);
                let amount = format!("{}.{:02}", cents / 100, cents % 100);
                let amount = if cents >= 100_000 && rng.random_bool(0.5) {
                    format!(
                        "\"{},{}\"",
                        &amount[..amount.len() - 6],
                        &amount[amount.len() - 6..]
                    )
                } else {
                    amount
                };
                let channel = if rng.random_bool(0.05) { "" } else { channel };
                text.push_str(&format!(
                    "{y:04}-{m:02}-{d:02},{campaign},{},{amount}\n",
                    crate::canonical::field(channel)
                ));
            }
        }
    }
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

fn chance(rng: &mut impl Rng, p: f64) -> bool {
    p > 0.0 && rng.random::<f64>() < p
}

/// Generates one user's rows (clickstream into `rows`, purchases into `purchase_rows`) and
/// records what the pipeline must make of them in `truth`.
fn generate_user(
    opts: &Options,
    rng: &mut ChaCha8Rng,
    truth: &mut Truth,
    files: &[ClickFile],
    rows: &mut Vec<(usize, Vec<u8>)>,
    purchase_rows: &mut Vec<(usize, Vec<u8>)>,
) {
    let mess = &opts.mess;
    let user_id = Id::random(rng);
    let home = rng.random_range(0..opts.files);
    let split = chance(rng, mess.split_user);
    let span = opts.days as i64 * 86_400 * SECOND;
    let mut t = opts.start_day * 86_400 * SECOND + rng.random_range(0..span * 3 / 4);
    let sessions = rng.random_range(1..=opts.max_sessions);
    let mut events: Vec<Event> = Vec::new();
    let pick_file = |rng: &mut ChaCha8Rng| {
        if split {
            rng.random_range(0..opts.files)
        } else {
            home
        }
    };

    if chance(rng, mess.outside_session) {
        // A purchase before the user's first app_open.
        stray_purchase(opts, rng, truth, &mut events, purchase_rows, t);
        t += rng.random_range(60..3600) * SECOND;
    }
    for s in 0..sessions {
        let open_id = Id::random(rng);
        let (campaign, channel) = if chance(rng, mess.no_campaign) {
            (None, None)
        } else {
            (
                Some(rng.random_range(1..=opts.campaigns).to_string()),
                Some(CHANNELS[rng.random_range(0..CHANNELS.len())]),
            )
        };
        let open_attrs = match (&campaign, channel) {
            (Some(c), Some(ch)) => map_literal(
                rng,
                mess.format_variants,
                &[("campaign_id", c, false), ("channel_id", ch, true)],
            ),
            _ => String::new(),
        };
        events.push(Event {
            id: open_id,
            kind: "app_open",
            time: t,
            attributes: open_attrs,
        });
        truth.sessions.push(truth::TruthSession {
            user_id,
            session_id: open_id,
            time: t,
            campaign_id: campaign.clone(),
            channel_id: channel.map(str::to_string),
        });
        let steps = rng.random_range(1..6);
        for _ in 0..steps {
            t += rng.random_range(1..300) * SECOND + fraction(rng, mess.format_variants);
            let kind = if rng.random_bool(0.5) {
                "search_product"
            } else {
                "view_product_details"
            };
            events.push(Event {
                id: Id::random(rng),
                kind,
                time: t,
                attributes: String::new(),
            });
        }
        let purchases = if rng.random_bool(0.5) {
            rng.random_range(1..=2)
        } else {
            0
        };
        for _ in 0..purchases {
            t += rng.random_range(1..600) * SECOND + fraction(rng, mess.format_variants);
            let purchase_id = Id::random(rng);
            let event_id = Id::random(rng);
            let attrs = map_literal(
                rng,
                mess.format_variants,
                &[("purchase_id", purchase_id.as_str(), true)],
            );
            let event_time = t;
            events.push(Event {
                id: event_id,
                kind: "purchase",
                time: t,
                attributes: attrs.clone(),
            });
            truth.counts.purchase_events += 1;
            if chance(rng, mess.resent_purchase) {
                // The same purchase sent again later in the session: the first one attributes.
                t += rng.random_range(1..60) * SECOND;
                events.push(Event {
                    id: Id::random(rng),
                    kind: "purchase",
                    time: t,
                    attributes: attrs,
                });
                truth.counts.purchase_events += 1;
                truth.counts.purchase_events_superseded += 1;
            }
            if chance(rng, mess.event_without_purchase) {
                truth.counts.purchase_events_without_purchase += 1;
            } else {
                let row = write_purchase(opts, rng, truth, purchase_rows, purchase_id, t);
                truth.attribute(
                    purchase_id,
                    row,
                    open_id,
                    campaign.clone(),
                    channel.map(str::to_string),
                    event_time,
                );
            }
        }
        let closed = !chance(rng, mess.unclosed);
        if closed {
            t += rng.random_range(1..300) * SECOND;
            events.push(Event {
                id: Id::random(rng),
                kind: "app_close",
                time: t,
                attributes: String::new(),
            });
            if chance(rng, mess.outside_session) {
                t += rng.random_range(60..3600) * SECOND;
                stray_purchase(opts, rng, truth, &mut events, purchase_rows, t);
            }
        }
        if s + 1 < sessions {
            // Gaps span midnights and month ends often enough to matter.
            t += rng.random_range(600..3 * 86_400) * SECOND;
        }
    }

    for e in &events {
        let file = pick_file(rng);
        let mut line = Vec::with_capacity(160);
        event_row(
            &mut line,
            rng,
            &files[file],
            &user_id,
            e,
            mess.format_variants,
        );
        rows.push((file, line));
        truth.counts.events += 1;
        if e.kind != "purchase" {
            truth.counts.non_purchase_events += 1;
        }
        if chance(rng, mess.duplicate_event) {
            let dup_file = pick_file(rng);
            let mut dup = Event {
                id: e.id,
                kind: e.kind,
                time: e.time,
                attributes: e.attributes.clone(),
            };
            match rng.random_range(0..3) {
                // Re-sent an hour later: the earlier row is kept.
                0 => dup.time += 3600 * SECOND,
                // Re-sent in the other attribute style: same values either way.
                1 if e.kind == "app_open" && !e.attributes.is_empty() => {
                    dup.attributes = restyle(&e.attributes);
                }
                _ => {}
            }
            let mut line = Vec::with_capacity(160);
            event_row(
                &mut line,
                rng,
                &files[dup_file],
                &user_id,
                &dup,
                mess.format_variants,
            );
            rows.push((dup_file, line));
            truth.counts.events += 1;
            truth.counts.duplicate_events += 1;
        }
    }
}

/// A purchase event outside any session, with a purchases row half of the time.
fn stray_purchase(
    opts: &Options,
    rng: &mut ChaCha8Rng,
    truth: &mut Truth,
    events: &mut Vec<Event>,
    purchase_rows: &mut Vec<(usize, Vec<u8>)>,
    t: i64,
) {
    let purchase_id = Id::random(rng);
    let attrs = map_literal(
        rng,
        opts.mess.format_variants,
        &[("purchase_id", purchase_id.as_str(), true)],
    );
    events.push(Event {
        id: Id::random(rng),
        kind: "purchase",
        time: t,
        attributes: attrs,
    });
    truth.counts.purchase_events += 1;
    truth.counts.purchase_events_outside_session += 1;
    if rng.random_bool(0.5) {
        write_purchase(opts, rng, truth, purchase_rows, purchase_id, t);
        truth.counts.purchases_without_event += 1;
    }
}

/// A purchase as the truth sees it.
#[derive(Debug, Clone, Copy)]
pub struct PurchaseRow {
    pub time: i64,
    pub cents: i64,
    pub confirmed: bool,
}

/// Writes a purchase's row (plus mess: duplicates, stale versions, unrelated purchases) and
/// returns the row the pipeline must keep.
fn write_purchase(
    opts: &Options,
    rng: &mut ChaCha8Rng,
    truth: &mut Truth,
    out: &mut Vec<(usize, Vec<u8>)>,
    purchase_id: Id,
    event_time: i64,
) -> PurchaseRow {
    let fmt = opts.mess.format_variants;
    let row = PurchaseRow {
        time: event_time + rng.random_range(0..120) * SECOND,
        cents: if rng.random_bool(0.1) {
            rng.random_range(100_000..2_000_000)
        } else {
            rng.random_range(100..100_000)
        },
        confirmed: rng.random_bool(0.8),
    };
    let file = rng.random_range(0..opts.files);
    let mut line = Vec::with_capacity(80);
    purchase_row(&mut line, rng, &purchase_id, &row, fmt);
    out.push((file, line));
    truth.counts.purchase_rows += 1;
    if chance(rng, opts.mess.duplicate_purchase) {
        let copy = if rng.random_bool(0.5) {
            row
        } else {
            // A stale earlier version: smaller purchaseTime, so it is not the one kept.
            PurchaseRow {
                time: row.time - rng.random_range(1..86_400) * SECOND,
                cents: rng.random_range(100..100_000),
                confirmed: rng.random_bool(0.5),
            }
        };
        let mut line = Vec::with_capacity(80);
        purchase_row(&mut line, rng, &purchase_id, &copy, fmt);
        out.push((rng.random_range(0..opts.files), line));
        truth.counts.purchase_rows += 1;
        truth.counts.duplicate_purchases += 1;
    }
    if chance(rng, opts.mess.purchase_without_event) {
        let other = PurchaseRow {
            time: event_time + rng.random_range(-86_400..86_400) * SECOND,
            cents: rng.random_range(100..100_000),
            confirmed: rng.random_bool(0.8),
        };
        let mut line = Vec::with_capacity(80);
        let other_id = Id::random(rng);
        purchase_row(&mut line, rng, &other_id, &other, fmt);
        out.push((rng.random_range(0..opts.files), line));
        truth.counts.purchase_rows += 1;
        truth.counts.purchases_without_event += 1;
    }
    row
}

/// A sub-second fraction, sometimes, as some dataset versions have.
fn fraction(rng: &mut impl Rng, variants: bool) -> i64 {
    if variants && rng.random_bool(0.1) {
        rng.random_range(1..1_000_000)
    } else {
        0
    }
}

/// A map literal in Python-dict style, JSON style, or either in doubled braces. Each entry is
/// (key, value, value is a string).
fn map_literal(rng: &mut impl Rng, variants: bool, entries: &[(&str, &str, bool)]) -> String {
    let style = if variants { rng.random_range(0..6) } else { 0 };
    let json = style % 2 == 1;
    let doubled = style >= 4;
    let q = if json { '"' } else { '\'' };
    let mut s = String::with_capacity(64);
    s.push_str(if doubled { "{{" } else { "{" });
    for (i, (k, v, is_str)) in entries.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push(q);
        s.push_str(k);
        s.push(q);
        s.push_str(": ");
        if *is_str {
            s.push(q);
            s.push_str(v);
            s.push(q);
        } else {
            s.push_str(v);
        }
    }
    s.push_str(if doubled { "}}" } else { "}" });
    s
}

/// The same map in the other quote style.
fn restyle(attrs: &str) -> String {
    if attrs.contains('"') {
        attrs.replace('"', "'")
    } else {
        attrs.replace('\'', "\"")
    }
}

fn push_timestamp(out: &mut Vec<u8>, micros: i64, unpadded_hour: bool) {
    let secs = micros.div_euclid(SECOND);
    let frac = micros.rem_euclid(SECOND);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    let text = if unpadded_hour {
        format!("{y:04}-{m:02}-{d:02} {h}:{mi:02}:{s:02}")
    } else {
        format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    };
    out.extend_from_slice(text.as_bytes());
    if frac != 0 {
        out.extend_from_slice(format!(".{frac:06}").as_bytes());
    }
}

fn push_csv_field(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

fn event_row(
    out: &mut Vec<u8>,
    rng: &mut impl Rng,
    file: &ClickFile,
    user: &Id,
    e: &Event,
    variants: bool,
) {
    let unpadded = variants && rng.random_bool(0.1);
    out.extend_from_slice(user.as_str().as_bytes());
    out.push(b',');
    out.extend_from_slice(e.id.as_str().as_bytes());
    out.push(b',');
    if file.time_first {
        push_timestamp(out, e.time, unpadded);
        out.push(b',');
        out.extend_from_slice(e.kind.as_bytes());
    } else {
        out.extend_from_slice(e.kind.as_bytes());
        out.push(b',');
        push_timestamp(out, e.time, unpadded);
    }
    // A short row leaves out the empty trailing attributes field entirely.
    if !(e.attributes.is_empty() && variants && rng.random_bool(0.3)) {
        out.push(b',');
        push_csv_field(out, &e.attributes);
    }
    out.extend_from_slice(b"\r\n");
}

fn purchase_row(out: &mut Vec<u8>, rng: &mut impl Rng, id: &Id, row: &PurchaseRow, variants: bool) {
    out.extend_from_slice(id.as_str().as_bytes());
    out.push(b',');
    push_timestamp(out, row.time, variants && rng.random_bool(0.1));
    out.push(b',');
    let (units, cents) = (row.cents / 100, row.cents % 100);
    if units >= 1000 && variants && rng.random_bool(0.7) {
        out.extend_from_slice(
            format!("\"{},{:03}.{cents:02}\"", units / 1000, units % 1000).as_bytes(),
        );
    } else {
        out.extend_from_slice(format!("{units}.{cents:02}").as_bytes());
    }
    out.push(b',');
    let spellings: [&str; 4] = if row.confirmed {
        ["True", "true", "TRUE", "1"]
    } else {
        ["False", "false", "FALSE", "0"]
    };
    let spelling = if variants && rng.random_bool(0.2) {
        spellings[rng.random_range(0..4)]
    } else {
        spellings[0]
    };
    out.extend_from_slice(spelling.as_bytes());
    out.extend_from_slice(b"\r\n");
}
