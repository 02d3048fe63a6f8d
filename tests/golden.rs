//! The real sample files against the expected results shipped beside them.

mod common;

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray};
use marketing_analytics::canonical;
use marketing_analytics::output::read_parquet;
use marketing_analytics::pipeline::{layout, run_all, Settings};

#[tokio::test]
async fn sample_dataset_matches_expected_results() {
    let Some(sample) = common::sample_dir() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let settings = Settings {
        threads: 2,
        ..Settings::default()
    };
    let report = run_all(
        &settings,
        &sample.join("mobile_app_clickstream").display().to_string(),
        &sample.join("user_purchases").display().to_string(),
        out.path(),
    )
    .await
    .expect("pipeline runs on the sample");

    let expected =
        |name: &str| std::fs::read_to_string(sample.join("expected").join(name)).unwrap();
    let projection = read_parquet(&out.path().join(layout::PROJECTION)).unwrap();
    common::assert_same_text(
        "projection",
        &canonical::projection_csv(&projection).unwrap(),
        &expected("attribution.csv"),
    );
    let top_campaigns = read_parquet(&out.path().join(layout::TOP_CAMPAIGNS)).unwrap();
    common::assert_same_text(
        "top campaigns",
        &canonical::top_campaigns_csv(&top_campaigns).unwrap(),
        &expected("top_campaigns.csv"),
    );
    let top_channels = read_parquet(&out.path().join(layout::TOP_CHANNELS)).unwrap();
    common::assert_same_text(
        "top channels",
        &canonical::top_channels_csv(&top_channels).unwrap(),
        &expected("top_channels.csv"),
    );

    let counts: HashMap<String, u64> = serde_json::from_str(&expected("counts.json")).unwrap();
    let ours = serde_json::to_value(&report.summary.counts).unwrap();
    for (key, want) in &counts {
        assert_eq!(ours[key].as_u64(), Some(*want), "count {key}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join(layout::SUMMARY)).unwrap())
            .unwrap();
    assert_eq!(summary["counts"], ours, "summary.json holds the counts");
    assert_eq!(
        summary["input_files"]["clickstream"]
            .as_object()
            .unwrap()
            .len(),
        5
    );
}

/// The projection the original project computed on the whole dataset agrees with ours on
/// campaign and channel for every purchase both contain (its sessionId is a Spark row id).
#[tokio::test]
async fn campaign_and_channel_agree_with_the_original_projection() {
    let Some(sample) = common::sample_dir() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let settings = Settings {
        threads: 2,
        ..Settings::default()
    };
    run_all(
        &settings,
        &sample.join("mobile_app_clickstream").display().to_string(),
        &sample.join("user_purchases").display().to_string(),
        out.path(),
    )
    .await
    .unwrap();
    let key = |batches: &[datafusion::arrow::array::RecordBatch]| {
        let mut m = HashMap::new();
        for b in batches {
            let get = |n: &str| {
                let c = b.column_by_name(n).unwrap_or_else(|| panic!("column {n}"));
                datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8)
                    .unwrap()
            };
            let (id, campaign, channel) = (get("purchaseId"), get("campaignId"), get("channelId"));
            let (id, campaign, channel) = (
                id.as_string::<i32>(),
                campaign.as_string::<i32>(),
                channel.as_string::<i32>(),
            );
            for i in 0..b.num_rows() {
                let v = |c: &datafusion::arrow::array::StringArray| {
                    (!c.is_null(i)).then(|| c.value(i).to_string())
                };
                m.insert(id.value(i).to_string(), (v(campaign), v(channel)));
            }
        }
        m
    };
    let ours = key(&read_parquet(&out.path().join(layout::PROJECTION)).unwrap());
    let mut theirs = HashMap::new();
    let mut parts: Vec<_> = std::fs::read_dir(sample.join("purchases_attribution"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    parts.sort();
    for part in parts {
        theirs.extend(key(&read_parquet(&part).unwrap()));
    }
    let mut compared = 0;
    for (id, want) in &theirs {
        if let Some(got) = ours.get(id) {
            assert_eq!(got, want, "purchase {id}");
            compared += 1;
        }
    }
    assert!(
        compared > 0,
        "the original projection shares no purchase with ours"
    );
    eprintln!("compared campaign and channel of {compared} purchases with the original projection");
}
