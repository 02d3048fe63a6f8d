//! The real sample files against the expected results shipped beside them.

use crate::common;

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray};
use marketing_analytics::app::{layout, run_all, Settings};
use marketing_analytics::storage::output::read_parquet;

/// Every engine × API combination on the sample gives the expected results.
#[tokio::test]
async fn sample_dataset_matches_expected_results() {
    let Some(sample) = common::sample_dir() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let (counts, dir) = common::run_all_combinations(
        &sample.join("mobile_app_clickstream"),
        &sample.join("user_purchases"),
        out.path(),
    )
    .await;
    let expected =
        |name: &str| std::fs::read_to_string(sample.join("expected").join(name)).unwrap();
    let (projection, top_campaigns, top_channels) = common::read_outputs(&dir);
    common::assert_same_text("projection", &projection, &expected("attribution.csv"));
    common::assert_same_text(
        "top campaigns",
        &top_campaigns,
        &expected("top_campaigns.csv"),
    );
    common::assert_same_text("top channels", &top_channels, &expected("top_channels.csv"));

    let want: HashMap<String, u64> = serde_json::from_str(&expected("counts.json")).unwrap();
    let ours = serde_json::to_value(&counts).unwrap();
    for (key, n) in &want {
        assert_eq!(ours[key].as_u64(), Some(*n), "count {key}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(layout::SUMMARY)).unwrap()).unwrap();
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
