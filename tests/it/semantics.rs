//! One test per semantic rule of the core pipeline (README "Semantics"), on hand-written rows
//! with expected output rows.

use crate::common;

use common::run_sql;
use marketing_analytics::canonical::field;

/// A clickstream row (attributes quoted as CSV needs).
fn ev(user: &str, id: &str, kind: &str, time: &str, attrs: &str) -> String {
    format!("{user},{id},{kind},2020-09-01 {time},{}\n", field(attrs))
}

fn open(user: &str, id: &str, time: &str, campaign: u32, channel: &str) -> String {
    ev(
        user,
        id,
        "app_open",
        time,
        &format!("{{'campaign_id': {campaign}, 'channel_id': '{channel}'}}"),
    )
}

fn close(user: &str, id: &str, time: &str) -> String {
    ev(user, id, "app_close", time, "")
}

fn buy(user: &str, id: &str, time: &str, purchase: &str) -> String {
    ev(
        user,
        id,
        "purchase",
        time,
        &format!("{{\"purchase_id\": \"{purchase}\"}}"),
    )
}

/// A purchases row: id, time (on 2020-09-01), cost, confirmed.
fn pr(id: &str, time: &str, cost: &str, confirmed: &str) -> String {
    format!("{id},2020-09-01 {time},{},{confirmed}\n", field(cost))
}

fn rows(parts: &[String]) -> String {
    parts.concat()
}

#[tokio::test]
async fn rule1_ties_put_app_open_first_and_app_close_last() {
    // Same second for open, purchase and close, written in reverse order.
    let clicks = rows(&[
        close("u1", "c1", "10:00:00"),
        buy("u1", "b1", "10:00:00", "p1"),
        open("u1", "o1", "10:00:00", 1, "A"),
    ]);
    let out = run_sql(&clicks, &pr("p1", "10:00:01", "1.00", "True")).await;
    assert_eq!(
        out.projection_rows(),
        vec!["p1,2020-09-01 10:00:01,1.00,true,o1,1,A"]
    );
}

#[tokio::test]
async fn rule1_equal_times_are_ordered_by_event_id() {
    // Two app_opens in the same second: oA sorts before oB, so oB opens the session that the
    // purchase falls in.
    let clicks = rows(&[
        open("u1", "oB", "09:00:00", 2, "B"),
        open("u1", "oA", "09:00:00", 3, "C"),
        buy("u1", "b1", "09:01:00", "p1"),
    ]);
    let out = run_sql(&clicks, &pr("p1", "09:01:00", "2.00", "True")).await;
    assert_eq!(
        out.projection_rows(),
        vec!["p1,2020-09-01 09:01:00,2.00,true,oB,2,B"]
    );
}

#[tokio::test]
async fn rule2_session_runs_from_app_open_to_app_close_inclusive() {
    let clicks = rows(&[
        buy("u1", "b0", "09:00:00", "p0"), // before any app_open
        open("u1", "o1", "10:00:00", 1, "A"),
        buy("u1", "b1", "10:05:00", "p1"),
        close("u1", "c1", "10:10:00"),
        buy("u1", "b2", "10:20:00", "p2"), // after app_close, before the next app_open
        open("u1", "o2", "11:00:00", 2, "B"),
        buy("u1", "b3", "11:05:00", "p3"), // never closed: runs to the user's last event
        ev("u1", "s9", "search_product", "23:00:00", ""),
    ]);
    let purchases = rows(&[
        pr("p0", "09:00:00", "1.00", "True"),
        pr("p1", "10:05:00", "2.00", "True"),
        pr("p2", "10:20:00", "3.00", "True"),
        pr("p3", "11:05:00", "4.00", "True"),
    ]);
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(
        out.projection_rows(),
        vec![
            "p1,2020-09-01 10:05:00,2.00,true,o1,1,A",
            "p3,2020-09-01 11:05:00,4.00,true,o2,2,B",
        ]
    );
    assert_eq!(out.counts.purchase_events_outside_session, 2);
    assert_eq!(out.counts.purchases_without_event, 2);
}

#[tokio::test]
async fn rule2_app_open_in_an_open_session_starts_a_new_one() {
    let clicks = rows(&[
        open("u1", "o1", "10:00:00", 1, "A"),
        buy("u1", "b1", "10:01:00", "p1"),
        open("u1", "o2", "10:02:00", 2, "B"),
        buy("u1", "b2", "10:03:00", "p2"),
        close("u1", "c2", "10:04:00"),
        close("u1", "c3", "10:04:30"), // a second close changes nothing
        buy("u1", "b3", "10:05:00", "p3"),
    ]);
    let purchases = rows(&[
        pr("p1", "10:01:00", "1.00", "True"),
        pr("p2", "10:03:00", "2.00", "True"),
        pr("p3", "10:05:00", "3.00", "True"),
    ]);
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(
        out.projection_rows(),
        vec![
            "p1,2020-09-01 10:01:00,1.00,true,o1,1,A",
            "p2,2020-09-01 10:03:00,2.00,true,o2,2,B",
        ]
    );
    assert_eq!(out.counts.purchase_events_outside_session, 1);
}

#[tokio::test]
async fn rule2_sessions_are_per_user() {
    // u2's purchase happens while u1 has a session open; u2 has none.
    let clicks = rows(&[
        open("u1", "o1", "10:00:00", 1, "A"),
        buy("u2", "b1", "10:01:00", "p1"),
        close("u1", "c1", "10:02:00"),
    ]);
    let out = run_sql(&clicks, &pr("p1", "10:01:00", "1.00", "True")).await;
    assert!(out.projection_rows().is_empty());
    assert_eq!(out.counts.purchase_events_outside_session, 1);
}

#[tokio::test]
async fn rule3_session_id_campaign_and_channel_come_from_the_app_open() {
    let clicks = rows(&[
        ev(
            "u1",
            "o1",
            "app_open",
            "10:00:00",
            "{'campaign_id': 296, 'channel_id': 'Google Ads'}",
        ),
        buy("u1", "b1", "10:01:00", "p1"),
        close("u1", "c1", "10:02:00"),
        ev(
            "u2",
            "o2",
            "app_open",
            "10:00:00",
            "{\"campaign_id\": \"77\", \"channel_id\": \"VK Ads\"}",
        ),
        buy("u2", "b2", "10:01:00", "p2"),
        ev("u3", "o3", "app_open", "10:00:00", ""),
        buy("u3", "b3", "10:01:00", "p3"),
        ev(
            "u4",
            "o4",
            "app_open",
            "10:00:00",
            "{{'campaign_id': 5, 'channel_id': None}}",
        ),
        ev("u4", "b4", "purchase", "10:01:00", "{'purchase_id': 'p4'}"),
    ]);
    let purchases = rows(&[
        pr("p1", "10:01:00", "1.00", "True"),
        pr("p2", "10:01:00", "2.00", "True"),
        pr("p3", "10:01:00", "3.00", "True"),
        pr("p4", "10:01:00", "4.00", "True"),
    ]);
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(
        out.projection_rows(),
        vec![
            "p1,2020-09-01 10:01:00,1.00,true,o1,296,Google Ads",
            "p2,2020-09-01 10:01:00,2.00,true,o2,77,VK Ads",
            "p3,2020-09-01 10:01:00,3.00,true,o3,,",
            "p4,2020-09-01 10:01:00,4.00,true,o4,5,",
        ]
    );
}

#[tokio::test]
async fn rule4_duplicate_events_keep_the_least_row() {
    let clicks = rows(&[
        open("u1", "o1", "10:00:00", 1, "A"),
        close("u1", "c1", "10:30:00"),
        close("u1", "c1", "10:10:00"), // same eventId, earlier: this close is kept
        buy("u1", "b1", "10:20:00", "p1"),
        buy("u1", "b2", "10:05:00", "p2"),
        buy("u1", "b2", "10:05:00", "p2"), // an exact duplicate
        // One eventId as app_open and as search_product at the same time: app_open ranks first.
        ev("u2", "x", "search_product", "10:00:00", ""),
        open("u2", "x", "10:00:00", 9, "Z"),
        buy("u2", "b3", "10:01:00", "p3"),
    ]);
    let purchases = rows(&[
        pr("p1", "10:20:00", "1.00", "True"),
        pr("p2", "10:05:00", "2.00", "True"),
        pr("p3", "10:01:00", "3.00", "True"),
    ]);
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(
        out.projection_rows(),
        vec![
            "p2,2020-09-01 10:05:00,2.00,true,o1,1,A",
            "p3,2020-09-01 10:01:00,3.00,true,x,9,Z",
        ]
    );
    assert_eq!(out.counts.duplicate_events, 3);
    assert_eq!(out.counts.purchase_events_outside_session, 1);
}

#[tokio::test]
async fn rule2_each_distinct_app_open_is_a_session_of_its_channel() {
    let clicks = rows(&[
        open("u1", "o1", "10:00:00", 1, "A"),
        // An app_open while a session is open ends it and starts another.
        open("u1", "o2", "10:10:00", 1, "B"),
        close("u1", "c1", "10:20:00"),
        open("u1", "o3", "11:00:00", 2, "A"),
        // The same app_open re-sent later with another channel: the earlier row is kept.
        open("u1", "o3", "12:00:00", 2, "C"),
        ev("u2", "o4", "app_open", "10:00:00", ""),
        // A duplicate of an app_open that is not an app_open itself.
        ev("u2", "o4", "search_product", "10:00:00", ""),
    ]);
    let out = run_sql(&clicks, "").await;
    assert_eq!(out.counts.sessions, 4);
    let got: Vec<(Option<&str>, u64)> = out
        .sessions_by_channel
        .iter()
        .map(|c| (c.channel_id.as_deref(), c.sessions))
        .collect();
    assert_eq!(got, vec![(Some("A"), 2), (None, 1), (Some("B"), 1)]);
}

#[tokio::test]
async fn rule4_duplicate_purchases_keep_the_greatest_row() {
    let clicks = rows(&[
        open("u1", "o1", "10:00:00", 1, "A"),
        buy("u1", "b1", "10:05:00", "p1"),
    ]);
    let purchases = rows(&[
        pr("p1", "10:06:00", "5.00", "False"),
        pr("p1", "10:06:00", "3.00", "True"), // greatest: same time, confirmed
        pr("p1", "09:00:00", "9.00", "True"), // earlier
        pr("p1", "10:06:00", "2.00", "True"),
    ]);
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(
        out.projection_rows(),
        vec!["p1,2020-09-01 10:06:00,3.00,true,o1,1,A"]
    );
    assert_eq!(out.counts.duplicate_purchases, 3);
}

#[tokio::test]
async fn rule5_the_earliest_in_session_event_attributes_a_purchase() {
    let clicks = rows(&[
        buy("u1", "b0", "09:00:00", "p1"), // outside any session: does not count
        open("u1", "oA", "10:00:00", 1, "A"),
        buy("u1", "b2", "10:05:00", "p1"),
        close("u1", "cA", "10:10:00"),
        open("u1", "oB", "11:00:00", 2, "B"),
        buy("u1", "b1", "11:05:00", "p1"), // later: superseded
        buy("u1", "b3", "11:06:00", "p9"), // no purchases row
    ]);
    let purchases = rows(&[
        pr("p1", "10:05:00", "1,234.50", "1"),
        pr("p7", "10:00:00", "1.00", "0"),
    ]);
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(out.projection, "purchaseId,purchaseTime,billingCost,isConfirmed,sessionId,campaignId,channelId\np1,2020-09-01 10:05:00,1234.50,true,oA,1,A\n");
    assert_eq!(out.counts.purchase_events_superseded, 1);
    assert_eq!(out.counts.purchase_events_without_purchase, 1);
    assert_eq!(out.counts.purchase_events_outside_session, 1);
    assert_eq!(out.counts.purchases_without_event, 1);
}

#[tokio::test]
async fn rule5_equal_times_go_to_the_least_event_id_across_users() {
    // Two users' sessions carry p1 at the same second: the event with the least eventId
    // attributes it, whichever user and file order; p2 has one event (the common case).
    let clicks = rows(&[
        open("u2", "o2", "10:00:00", 2, "B"),
        buy("u2", "b1", "10:05:00", "p1"),
        close("u2", "c2", "10:10:00"),
        open("u1", "o1", "10:00:00", 1, "A"),
        buy("u1", "b2", "10:05:00", "p1"), // same time, greater eventId: superseded
        buy("u1", "b3", "10:06:00", "p2"),
        close("u1", "c1", "10:10:00"),
    ]);
    let purchases = rows(&[
        pr("p1", "10:05:00", "1.00", "True"),
        pr("p2", "10:06:00", "2.00", "True"),
    ]);
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(
        out.projection_rows(),
        vec![
            "p1,2020-09-01 10:05:00,1.00,true,o2,2,B",
            "p2,2020-09-01 10:06:00,2.00,true,o1,1,A",
        ]
    );
    assert_eq!(out.counts.purchase_events_superseded, 1);
}

#[tokio::test]
async fn rule6_top_campaigns_sum_confirmed_revenue_exactly() {
    let mut clicks = String::new();
    let mut purchases = String::new();
    // Campaigns 1..=12 each with one confirmed purchase of (c * 10).10 and an unconfirmed one
    // that must not count; campaigns 11 and 12 tie on revenue with 3.
    for c in 1..=12u32 {
        let u = format!("u{c}");
        clicks += &open(&u, &format!("o{c}"), "10:00:00", c, "A");
        clicks += &buy(&u, &format!("b{c}"), "10:01:00", &format!("p{c}"));
        clicks += &buy(&u, &format!("n{c}"), "10:02:00", &format!("q{c}"));
        let cost = if c >= 11 {
            "30.10".to_string()
        } else {
            format!("{}.10", c * 10)
        };
        purchases += &pr(&format!("p{c}"), "10:01:00", &cost, "True");
        purchases += &pr(&format!("q{c}"), "10:02:00", "1,000,000.00", "False");
    }
    // 0.1 + 0.2 in campaign 1: exactly 0.30 more.
    clicks += &buy("u1", "b1x", "10:03:00", "p1x");
    clicks += &buy("u1", "b1y", "10:04:00", "p1y");
    purchases += &pr("p1x", "10:03:00", "0.10", "true");
    purchases += &pr("p1y", "10:04:00", "0.20", "TRUE");
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(
        out.top_campaigns,
        "campaignId,revenue\n10,100.10\n9,90.10\n8,80.10\n7,70.10\n6,60.10\n5,50.10\n4,40.10\n11,30.10\n12,30.10\n3,30.10\n"
    );
    let without_campaign_1: Vec<&str> = out
        .top_campaigns
        .lines()
        .filter(|l| l.starts_with("1,"))
        .collect();
    assert!(
        without_campaign_1.is_empty(),
        "campaign 1 (10.40) is 13th: {without_campaign_1:?}"
    );
}

#[tokio::test]
async fn rule6_revenue_is_exact_to_the_cent() {
    let mut clicks = open("u1", "o1", "10:00:00", 1, "A");
    let mut purchases = String::new();
    for i in 0..100 {
        clicks += &buy("u1", &format!("b{i:03}"), "10:01:00", &format!("p{i:03}"));
        purchases += &pr(&format!("p{i:03}"), "10:01:00", "0.10", "True");
    }
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(out.top_campaigns, "campaignId,revenue\n1,10.00\n");
}

#[tokio::test]
async fn rule7_top_channel_per_campaign_by_distinct_sessions() {
    let mut clicks = String::new();
    let mut purchases = String::new();
    let mut add =
        |user: &str, session: &str, campaign: u32, channel: &str, purchases_in_session: u32| {
            clicks += &open(user, session, "10:00:00", campaign, channel);
            for k in 0..purchases_in_session {
                let p = format!("{session}-p{k}");
                clicks += &buy(
                    user,
                    &format!("{session}-b{k}"),
                    &format!("10:0{}:00", k + 1),
                    &p,
                );
                purchases += &pr(&p, "10:01:00", "1.00", "False");
            }
            clicks += &close(user, &format!("{session}-c"), "10:30:00");
        };
    // Campaign 9: Google has 2 sessions, VK 1 session with 3 purchases: sessions count.
    add("u1", "s1", 9, "Google Ads", 1);
    add("u2", "s2", 9, "Google Ads", 1);
    add("u3", "s3", 9, "VK Ads", 3);
    // Campaign 10: a tie of one session each goes to the smallest channelId.
    add("u4", "s4", 10, "Yandex Ads", 1);
    add("u5", "s5", 10, "Facebook Ads", 1);
    let out = run_sql(&clicks, &purchases).await;
    // Ordered by campaignId as strings: "10" < "9".
    assert_eq!(
        out.top_channels,
        "campaignId,channelId,uniqueSessions\n10,Facebook Ads,1\n9,Google Ads,2\n"
    );
}

#[tokio::test]
async fn rule8_every_left_out_row_is_counted_by_reason() {
    let clicks = rows(&[
        buy("u1", "b0", "09:00:00", "p0"), // outside
        open("u1", "o1", "10:00:00", 1, "A"),
        ev("u1", "s1", "search_product", "10:01:00", ""),
        ev("u1", "s1", "search_product", "10:01:00", ""), // duplicate
        buy("u1", "b1", "10:02:00", "p1"),                // attributed
        buy("u1", "b2", "10:03:00", "p1"),                // superseded
        buy("u1", "b3", "10:04:00", "p3"),                // no purchases row
        close("u1", "c1", "10:05:00"),
        ev("u1", "z1", "some_new_event_type", "10:06:00", ""),
    ]);
    let purchases = rows(&[
        pr("p1", "10:02:00", "1.00", "True"),
        pr("p1", "10:02:00", "1.00", "True"), // duplicate
        pr("p0", "09:00:00", "1.00", "True"), // its event is outside: without event
        pr("p8", "09:00:00", "1.00", "True"), // no event at all
    ]);
    let out = run_sql(&clicks, &purchases).await;
    let c = &out.counts;
    assert_eq!(
        (c.events, c.purchase_rows, c.attributed_purchases),
        (9, 4, 1),
        "{c:?}"
    );
    assert_eq!(c.duplicate_events, 1);
    assert_eq!(c.duplicate_purchases, 1);
    assert_eq!(c.purchase_events_outside_session, 1);
    assert_eq!(c.purchase_events_superseded, 1);
    assert_eq!(c.purchase_events_without_purchase, 1);
    assert_eq!(c.purchases_without_event, 2);
    assert_eq!(c.non_purchase_events, 4);
    assert_eq!(c.purchase_events, 4);
}

/// The original project's dummy scenario: one user, two sessions, three purchases.
#[tokio::test]
async fn dummy_scenario_three_purchases_two_sessions() {
    let clicks = rows(&[
        open("u1", "s1", "10:00:00", 1, "Google Ads"),
        ev("u1", "e2", "search_product", "10:01:00", ""),
        ev("u1", "e3", "view_product_details", "10:02:00", ""),
        buy("u1", "e4", "10:03:00", "p1"),
        buy("u1", "e5", "10:04:00", "p2"),
        close("u1", "e6", "10:05:00"),
        open("u1", "s2", "12:00:00", 2, "Yandex Ads"),
        ev("u1", "e8", "search_product", "12:01:00", ""),
        buy("u1", "e9", "12:02:00", "p3"),
        close("u1", "e10", "12:03:00"),
    ]);
    let purchases = rows(&[
        pr("p1", "10:03:00", "100.50", "True"),
        pr("p2", "10:04:00", "200.00", "False"),
        pr("p3", "12:02:00", "300.00", "True"),
    ]);
    let out = run_sql(&clicks, &purchases).await;
    assert_eq!(
        out.projection_rows(),
        vec![
            "p1,2020-09-01 10:03:00,100.50,true,s1,1,Google Ads",
            "p2,2020-09-01 10:04:00,200.00,false,s1,1,Google Ads",
            "p3,2020-09-01 12:02:00,300.00,true,s2,2,Yandex Ads",
        ]
    );
    assert_eq!(
        out.top_campaigns,
        "campaignId,revenue\n2,300.00\n1,100.50\n"
    );
    assert_eq!(
        out.top_channels,
        "campaignId,channelId,uniqueSessions\n1,Google Ads,1\n2,Yandex Ads,1\n"
    );
}

/// The `sessionize` aggregate is usable from the DataFrame API, not only from SQL.
#[tokio::test]
async fn sessionize_is_callable_from_the_dataframe_api() {
    use datafusion::arrow::array::AsArray;
    use datafusion::prelude::{ident, lit};
    use marketing_analytics::attribution::udaf::sessionize;
    use marketing_analytics::engine::session_context;

    let ctx = session_context(2);
    ctx.sql(
        "CREATE TABLE ev AS SELECT * FROM (VALUES
            ('u1', 'o1', 'app_open', CAST('2020-09-01 10:00:00' AS TIMESTAMP), '7', 'A', NULL),
            ('u1', 'b1', 'purchase', CAST('2020-09-01 10:01:00' AS TIMESTAMP), NULL, NULL, 'p1'),
            ('u2', 'b2', 'purchase', CAST('2020-09-01 10:01:00' AS TIMESTAMP), NULL, NULL, 'p2')
         ) AS t(userId, eventId, eventType, eventTime, campaignId, channelId, purchaseId)",
    )
    .await
    .unwrap();
    let df = ctx
        .table("ev")
        .await
        .unwrap()
        .aggregate(
            vec![ident("userId")],
            vec![sessionize(vec![
                ident("eventTime"),
                ident("eventId"),
                ident("eventType"),
                ident("campaignId"),
                ident("channelId"),
                ident("purchaseId"),
                lit(false),
            ])
            .alias("items")],
        )
        .unwrap()
        .sort(vec![ident("userId").sort(true, false)])
        .unwrap();
    let batches = df.collect().await.unwrap();
    let items = batches[0].column_by_name("items").unwrap().as_list::<i32>();
    let statuses = |row: usize| {
        let v = items.value(row);
        let s = v.as_struct();
        let status = s.column_by_name("status").unwrap().as_string::<i32>();
        let session = s.column_by_name("sessionId").unwrap().as_string::<i32>();
        (
            status.value(0).to_string(),
            session.iter().next().flatten().map(str::to_string),
        )
    };
    assert_eq!(
        statuses(0),
        ("in_session".to_string(), Some("o1".to_string()))
    );
    assert_eq!(statuses(1), ("outside_session".to_string(), None));
}
