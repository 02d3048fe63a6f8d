//! Helpers shared by the integration tests: run the jobs' transforms on rows written inline,
//! and compare outputs in the canonical text form.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use marketing_analytics::app::summary::{sessions_by_channel, ChannelSessions, Counts};
use marketing_analytics::attribution::dedup::Dedup;
use marketing_analytics::attribution::{self, Materialize, Outcomes};
use marketing_analytics::attribution::{tables, Engine};
use marketing_analytics::canonical;
use marketing_analytics::engine::session_context;
use marketing_analytics::input::schema;
use marketing_analytics::input::source::decode_text;
use marketing_analytics::input::TableKind;
use marketing_analytics::marts::{top_campaigns, top_channels, Api};
use marketing_analytics::storage::output::conform;

/// Tests that start processes, kill them or measure memory take this lock: one at a time, so
/// that one's load does not change what another measures or let a timed kill land elsewhere.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const CLICKSTREAM_HEADER: &str = "userId,eventId,eventType,eventTime,attributes\n";
pub const PURCHASES_HEADER: &str = "purchaseId,purchaseTime,billingCost,isConfirmed\n";

/// The outputs of one pipeline run on inline rows, in canonical text.
#[derive(Debug)]
pub struct Outputs {
    pub projection: String,
    pub top_campaigns: String,
    pub top_channels: String,
    pub counts: Counts,
    pub outcomes: Outcomes,
    pub sessions_by_channel: Vec<ChannelSessions>,
}

impl Outputs {
    /// The projection's data rows (header left out).
    pub fn projection_rows(&self) -> Vec<&str> {
        self.projection.lines().skip(1).collect()
    }
}

fn table(
    batches: Vec<RecordBatch>,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Arc<MemTable> {
    let partition = if batches.is_empty() { vec![] } else { batches };
    Arc::new(MemTable::try_new(schema, vec![partition]).expect("memtable"))
}

/// Runs projection, both marts and the counts on clickstream and purchases CSV text (headers
/// included), entirely in memory.
pub async fn run_inline(
    clickstream_csv: &str,
    purchases_csv: &str,
    engine: Engine,
    api: Api,
) -> Outputs {
    run_inline_with(
        clickstream_csv,
        purchases_csv,
        engine,
        api,
        Dedup::IN_MEMORY,
    )
    .await
}

/// [`run_inline`] with rule 4 for events done by `dedup`.
pub async fn run_inline_with(
    clickstream_csv: &str,
    purchases_csv: &str,
    engine: Engine,
    api: Api,
    dedup: Dedup,
) -> Outputs {
    run_inline_in(
        session_context(2),
        clickstream_csv,
        purchases_csv,
        engine,
        api,
        dedup,
    )
    .await
}

/// `key_hash` giving every key the same hash: classify.sql must then find every purchase_id's
/// earliest event by grouping, and a collision must never change a pick.
pub fn colliding_key_hash() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::Int64Array;
    use datafusion::logical_expr::{ColumnarValue, Volatility};
    datafusion::logical_expr::create_udf(
        marketing_analytics::attribution::bucket::KEY_HASH,
        vec![DataType::Utf8],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let rows = match &args[0] {
                ColumnarValue::Array(a) => a.len(),
                ColumnarValue::Scalar(_) => 1,
            };
            Ok(ColumnarValue::Array(Arc::new(Int64Array::from(vec![
                42;
                rows
            ]))))
        }),
    )
}

/// The decoded `app_open` rows per channel, counted here by a query of their own.
async fn opens(ctx: &datafusion::prelude::SessionContext) -> marketing_analytics::input::Opens {
    let batches = ctx
        .sql("SELECT channelId, COUNT(*) FROM events WHERE eventType = 'app_open' GROUP BY channelId")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut opens = marketing_analytics::input::Opens::default();
    for b in &batches {
        let channel = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
        let channel = channel.as_string::<i32>();
        let n = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            let c = channel.is_valid(i).then(|| channel.value(i));
            opens.add(c, n.value(i) as u64);
        }
    }
    opens
}

/// [`run_inline_with`] on a context of the caller's.
pub async fn run_inline_in(
    ctx: datafusion::prelude::SessionContext,
    clickstream_csv: &str,
    purchases_csv: &str,
    engine: Engine,
    api: Api,
    dedup: Dedup,
) -> Outputs {
    let (events, events_read) = decode_text(
        TableKind::Clickstream,
        clickstream_csv.as_bytes(),
        b',',
        "clickstream.csv",
        None,
    )
    .expect("clickstream decodes");
    let (purchases, purchases_read) = decode_text(
        TableKind::Purchases,
        purchases_csv.as_bytes(),
        b',',
        "purchases.csv",
        None,
    )
    .expect("purchases decode");
    ctx.register_table(tables::EVENTS, table(events, schema::EVENTS.clone()))
        .unwrap();
    ctx.register_table(
        tables::PURCHASES,
        table(purchases, schema::PURCHASES.clone()),
    )
    .unwrap();
    let result = attribution::transform_with(&ctx, engine, &Materialize::Memory, dedup)
        .await
        .expect("attribution transform");
    let projection: Vec<RecordBatch> = result
        .projection
        .collect()
        .await
        .expect("projection")
        .iter()
        .map(|b| {
            conform(b, &attribution::PROJECTION).expect("the projection has the promised schema")
        })
        .collect();
    let opens = opens(&ctx).await;
    let counts = Counts::new(events_read, purchases_read, &opens, &result.outcomes)
        .expect("accounting identities hold");
    let sessions_by_channel =
        sessions_by_channel(&opens, &result.outcomes).expect("sessions add up");
    let mart_ctx = session_context(2);
    mart_ctx
        .register_table(
            tables::PROJECTION,
            table(projection.clone(), attribution::PROJECTION.clone()),
        )
        .unwrap();
    let top_campaigns = top_campaigns::MART
        .transform(&mart_ctx, api)
        .await
        .expect("top campaigns");
    let top_channels = top_channels::MART
        .transform(&mart_ctx, api)
        .await
        .expect("top channels");
    Outputs {
        projection: canonical::projection_csv(&projection).unwrap(),
        top_campaigns: canonical::top_campaigns_csv(&top_campaigns).unwrap(),
        top_channels: canonical::top_channels_csv(&top_channels).unwrap(),
        counts,
        outcomes: result.outcomes,
        sessions_by_channel,
    }
}

/// Every engine × API combination.
pub const COMBINATIONS: [(Engine, Api); 4] = [
    (Engine::Sql, Api::Sql),
    (Engine::Sql, Api::Dataframe),
    (Engine::Udaf, Api::Sql),
    (Engine::Udaf, Api::Dataframe),
];

/// Runs rows (without headers) through every engine × API combination, and each engine with
/// the sort dedup too, asserts they all give identical outputs, and returns them.
pub async fn run_sql(clickstream_rows: &str, purchases_rows: &str) -> Outputs {
    let clickstream = format!("{CLICKSTREAM_HEADER}{clickstream_rows}");
    let purchases = format!("{PURCHASES_HEADER}{purchases_rows}");
    let first = run_inline(&clickstream, &purchases, Engine::Sql, Api::Sql).await;
    let variants = COMBINATIONS[1..]
        .iter()
        .map(|(engine, api)| (*engine, *api, Dedup::IN_MEMORY))
        .chain([Engine::Sql, Engine::Udaf].map(|e| (e, Api::Sql, Dedup::Sort)))
        // Spilling from the first batch: every row is written out and read back by part.
        .chain([Engine::Sql, Engine::Udaf].map(|e| (e, Api::Sql, Dedup::Hash { spill_at: 0 })));
    for (engine, api, dedup) in variants {
        let other = run_inline_with(&clickstream, &purchases, engine, api, dedup).await;
        let what = format!("{engine:?} engine with {api:?} API and {dedup:?} dedup");
        assert_same_text(
            &format!("projection of {what}"),
            &other.projection,
            &first.projection,
        );
        assert_same_text(
            &format!("top campaigns of {what}"),
            &other.top_campaigns,
            &first.top_campaigns,
        );
        assert_same_text(
            &format!("top channels of {what}"),
            &other.top_channels,
            &first.top_channels,
        );
        assert_eq!(other.counts, first.counts, "counts of {what}");
        assert_eq!(
            other.sessions_by_channel, first.sessions_by_channel,
            "sessions of {what}"
        );
    }
    let ctx = session_context(2);
    ctx.register_udf(colliding_key_hash());
    let other = run_inline_in(
        ctx,
        &clickstream,
        &purchases,
        Engine::Udaf,
        Api::Sql,
        Dedup::IN_MEMORY,
    )
    .await;
    assert_same_text(
        "projection with every purchase_id's hash colliding",
        &other.projection,
        &first.projection,
    );
    assert_eq!(
        other.counts, first.counts,
        "counts with every purchase_id's hash colliding"
    );
    first
}

/// The shared sample dataset, when present.
pub fn sample_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/capstone-sample");
    if dir.join("expected").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (it ships beside the repository, not in it); this check did not run",
            dir.display()
        );
        None
    }
}

/// Asserts two canonical texts are equal, showing the first differing line.
pub fn assert_same_text(what: &str, got: &str, want: &str) {
    if got != want {
        let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
        let first = g
            .iter()
            .zip(&w)
            .position(|(a, b)| a != b)
            .unwrap_or(g.len().min(w.len()));
        panic!(
            "{what} differs: {} lines vs {} expected; first difference at line {}:\n  got:  {:?}\n  want: {:?}",
            g.len(),
            w.len(),
            first + 1,
            g.get(first),
            w.get(first)
        );
    }
}

/// Canonical outputs of a pipeline run written to `out` (the layout of `run`).
pub fn read_outputs(out: &std::path::Path) -> (String, String, String) {
    use marketing_analytics::app::layout;
    use marketing_analytics::storage::output::read_parquet;
    (
        canonical::projection_csv(&read_parquet(&out.join(layout::PROJECTION)).unwrap()).unwrap(),
        canonical::top_campaigns_csv(&read_parquet(&out.join(layout::TOP_CAMPAIGNS)).unwrap())
            .unwrap(),
        canonical::top_channels_csv(&read_parquet(&out.join(layout::TOP_CHANNELS)).unwrap())
            .unwrap(),
    )
}

/// Runs the whole pipeline from files with every engine × API combination (and once under a
/// memory cap) into `out/<engine>-<api>[-capped]/`, asserts that all of them wrote byte-identical datasets and equal
/// counts, and returns the first run's counts and output directory.
pub async fn run_all_combinations(
    clickstream: &std::path::Path,
    purchases: &std::path::Path,
    out: &std::path::Path,
) -> (Counts, PathBuf) {
    use marketing_analytics::app::{layout, run_all, Settings};
    use marketing_analytics::storage::output::PART_FILE;
    let mut first: Option<(Counts, PathBuf)> = None;
    // Under a memory cap the job takes the other path: rule 4 by dedup.sql's sort instead of
    // hashing, intermediates written as Parquet.
    let variants = COMBINATIONS
        .map(|(engine, api)| (engine, api, None))
        .into_iter()
        .chain([(Engine::Udaf, Api::Sql, Some(4usize << 30))]);
    for (engine, api, memory_limit) in variants {
        let capped = if memory_limit.is_some() {
            "-capped"
        } else {
            ""
        };
        let dir = out.join(format!("{engine:?}-{api:?}{capped}"));
        let settings = Settings {
            engine,
            api,
            threads: 2,
            memory_limit,
            ..Settings::default()
        };
        let report = run_all(
            &settings,
            &clickstream.display().to_string(),
            &purchases.display().to_string(),
            &dir,
        )
        .await
        .unwrap_or_else(|e| panic!("{engine:?}/{api:?}: {e}"));
        match &first {
            None => first = Some((report.summary.counts, dir)),
            Some((counts, first_dir)) => {
                assert_eq!(
                    &report.summary.counts, counts,
                    "counts of {engine:?}/{api:?}"
                );
                for dataset in [
                    layout::PROJECTION,
                    layout::TOP_CAMPAIGNS,
                    layout::TOP_CHANNELS,
                ] {
                    let a = std::fs::read(first_dir.join(dataset).join(PART_FILE)).unwrap();
                    let b = std::fs::read(dir.join(dataset).join(PART_FILE)).unwrap();
                    assert!(
                        a == b,
                        "{dataset} of {engine:?}/{api:?} differs from {first_dir:?}"
                    );
                }
            }
        }
    }
    first.expect("at least one combination")
}

/// A Python interpreter with pyarrow and polars, or `None` (and why) when there is none.
pub fn python() -> Option<String> {
    match std::env::var("MARKETING_ANALYTICS_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("MARKETING_ANALYTICS_REQUIRE_PYTHON").is_some() => {
            panic!(
                "MARKETING_ANALYTICS_REQUIRE_PYTHON is set but MARKETING_ANALYTICS_PYTHON is not"
            )
        }
        _ => {
            eprintln!(
                "skipped the pyarrow/polars checks: set MARKETING_ANALYTICS_PYTHON to a Python \
                 with pyarrow and polars (.ci/run does)"
            );
            None
        }
    }
}

/// The files of one date of a warehouse table, as its latest version lists them.
pub async fn date_files(
    warehouse: &std::path::Path,
    table: &str,
    date: &str,
) -> Vec<marketing_analytics::storage::delta::DataFile> {
    let day = marketing_analytics::calendar::parse_date(date).unwrap();
    table_files(warehouse, table)
        .await
        .into_iter()
        .filter(|f| f.date == day)
        .collect()
}

/// Every data file of a warehouse table, as its latest version lists them.
pub async fn table_files(
    warehouse: &std::path::Path,
    table: &str,
) -> Vec<marketing_analytics::storage::delta::DataFile> {
    use marketing_analytics::storage::delta;
    let ctx = marketing_analytics::engine::session_context(2);
    let location = warehouse.join(table).display().to_string();
    let t = delta::open(&ctx, &location, delta::AsOf::Latest)
        .await
        .unwrap()
        .unwrap();
    delta::files(&t).await.unwrap()
}

/// A file's text, gunzipped when it is gzip.
pub fn read_text(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut out)
            .unwrap();
        out
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

/// The stored projection of `warehouse` as `settings` read it, in canonical text.
pub async fn stored_projection(
    settings: &marketing_analytics::app::Settings,
    warehouse: &std::path::Path,
) -> String {
    use marketing_analytics::app::period::{register_stored_projection, Period};
    let ctx = session_context(2);
    assert!(
        register_stored_projection(&ctx, settings, warehouse, &Period::all())
            .await
            .unwrap()
    );
    let rows = ctx
        .sql(&format!("SELECT * FROM {}", tables::PROJECTION))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    canonical::projection_csv(&rows).unwrap()
}

/// The data lines of a CSV export (header first) split by date: those before `cut`, but
/// every `late_every`th of them held back as a late arrival (0: none), and the rest; each
/// with the header. Also returns how many were held back.
pub fn split_by_date(text: &str, cut: &str, late_every: usize) -> (String, String, usize) {
    let mut lines = text.split_inclusive('\n');
    let header = lines.next().unwrap_or_default().to_string();
    let (mut early, mut late) = (header.clone(), header);
    let (mut n, mut held) = (0, 0);
    for line in lines {
        let date = line
            .as_bytes()
            .windows(10)
            .position(|w| {
                w.iter().enumerate().all(|(i, b)| match i {
                    4 | 7 => *b == b'-',
                    _ => b.is_ascii_digit(),
                })
            })
            .map(|at| &line[at..at + 10]);
        n += 1;
        match date {
            Some(d) if d < cut && (late_every == 0 || n % late_every != 0) => early.push_str(line),
            Some(d) if d < cut => {
                held += 1;
                late.push_str(line)
            }
            _ => late.push_str(line),
        }
    }
    (early, late, held)
}
