//! The pipeline against the generator's ground truth on a messy generated dataset.

use crate::common;

use marketing_analytics::app::summary::{ChannelSessions, Counts};
use marketing_analytics::app::{layout, run_all, Settings};
use marketing_analytics::canonical;
use marketing_analytics::generate::{generate, Options};
use marketing_analytics::storage::output::read_parquet;

#[tokio::test]
async fn messy_generated_dataset_matches_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        users: 14_000,
        files: 5,
        seed: 7,
        ..Options::default()
    };
    let g = generate(&opts, &dir.path().join("data")).unwrap();
    assert!(g.events >= 200_000, "only {} events generated", g.events);
    let truth = g.truth_dir.unwrap();
    let read = |name: &str| std::fs::read_to_string(truth.join(name)).unwrap();

    let out = dir.path().join("out");
    let settings = Settings {
        threads: 2,
        ..Settings::default()
    };
    let report = run_all(
        &settings,
        &g.clickstream_dir.display().to_string(),
        &g.purchases_dir.display().to_string(),
        &out,
    )
    .await
    .expect("pipeline runs on generated data");

    let truth_counts: Counts = serde_json::from_str(&read("counts.json")).unwrap();
    assert_eq!(report.summary.counts, truth_counts);
    let truth_sessions: Vec<ChannelSessions> =
        serde_json::from_str(&read("sessions_by_channel.json")).unwrap();
    assert_eq!(report.summary.sessions_by_channel, truth_sessions);
    assert!(truth_sessions.len() > 2 && truth_counts.sessions > 10_000);
    // The mess is really there.
    let c = &truth_counts;
    for (what, n) in [
        ("duplicate events", c.duplicate_events),
        ("duplicate purchases", c.duplicate_purchases),
        ("outside session", c.purchase_events_outside_session),
        ("superseded", c.purchase_events_superseded),
        ("without purchase", c.purchase_events_without_purchase),
        ("purchases without event", c.purchases_without_event),
    ] {
        assert!(n > 100, "too few {what}: {n}");
    }

    let projection = read_parquet(&out.join(layout::PROJECTION)).unwrap();
    common::assert_same_text(
        "projection",
        &canonical::projection_csv(&projection).unwrap(),
        &read("attribution.csv"),
    );
    let top_campaigns = read_parquet(&out.join(layout::TOP_CAMPAIGNS)).unwrap();
    common::assert_same_text(
        "top campaigns",
        &canonical::top_campaigns_csv(&top_campaigns).unwrap(),
        &read("top_campaigns.csv"),
    );
    let top_channels = read_parquet(&out.join(layout::TOP_CHANNELS)).unwrap();
    common::assert_same_text(
        "top channels",
        &canonical::top_channels_csv(&top_channels).unwrap(),
        &read("top_channels.csv"),
    );
}

/// Every engine × API combination on a messy dataset of over a million events, with several
/// sessions per user, unclosed sessions, duplicates and users split across files, equals the
/// ground truth (and, byte for byte, each other).
#[tokio::test]
async fn all_engines_and_apis_equal_ground_truth_on_a_million_events() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        users: 62_000,
        files: 6,
        seed: 2024,
        max_sessions: 5,
        ..Options::default()
    };
    let g = generate(&opts, &dir.path().join("data")).unwrap();
    assert!(g.events >= 1_000_000, "only {} events generated", g.events);
    let truth = g.truth_dir.unwrap();
    let read = |name: &str| std::fs::read_to_string(truth.join(name)).unwrap();
    let (counts, out) = common::run_all_combinations(
        &g.clickstream_dir,
        &g.purchases_dir,
        &dir.path().join("out"),
    )
    .await;
    let truth_counts: Counts = serde_json::from_str(&read("counts.json")).unwrap();
    assert_eq!(counts, truth_counts);
    assert!(
        truth_counts.duplicate_events > 1000 && truth_counts.purchase_events_outside_session > 1000
    );
    let (projection, top_campaigns, top_channels) = common::read_outputs(&out);
    common::assert_same_text("projection", &projection, &read("attribution.csv"));
    common::assert_same_text("top campaigns", &top_campaigns, &read("top_campaigns.csv"));
    common::assert_same_text("top channels", &top_channels, &read("top_channels.csv"));
}

#[test]
fn generator_is_deterministic_per_seed() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let opts = Options {
        users: 300,
        files: 3,
        seed: 11,
        ..Options::default()
    };
    generate(&opts, a.path()).unwrap();
    generate(&opts, b.path()).unwrap();
    for sub in [
        "mobile_app_clickstream/mobile_app_clickstream_2.csv.gz",
        "user_purchases/user_purchases_0.csv.gz",
        "truth/attribution.csv",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(sub)).unwrap(),
            std::fs::read(b.path().join(sub)).unwrap(),
            "{sub}"
        );
    }
    let other = tempfile::tempdir().unwrap();
    generate(&Options { seed: 12, ..opts }, other.path()).unwrap();
    assert_ne!(
        std::fs::read(a.path().join("truth/attribution.csv")).unwrap(),
        std::fs::read(other.path().join("truth/attribution.csv")).unwrap()
    );
}
