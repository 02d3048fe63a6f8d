-- What the attribution used and left out, by reason (rule 8).
SELECT
    (SELECT COUNT(*) FROM purchase_events_classified WHERE status = 'duplicate_event') AS duplicate_events,
    (SELECT COUNT(*) FROM purchase_events_classified
        WHERE status = 'duplicate_event' AND eventType = 'purchase') AS duplicate_purchase_type_rows,
    (SELECT COUNT(*) FROM purchase_events_classified WHERE status <> 'duplicate_event') AS purchase_events,
    (SELECT COUNT(*) FROM purchase_events_classified WHERE status = 'outside_session') AS purchase_events_outside_session,
    (SELECT COUNT(*) FROM purchase_events_classified WHERE status = 'superseded') AS purchase_events_superseded,
    (SELECT COUNT(*) FROM purchase_events_classified WHERE status = 'without_purchase') AS purchase_events_without_purchase,
    (SELECT COUNT(*) FROM purchase_events_classified WHERE status = 'attributed') AS attributed_purchases,
    (SELECT COUNT(*) FROM purchases_ranked WHERE copy > 1) AS duplicate_purchases,
    (SELECT COUNT(*) FROM purchases_ranked WHERE copy = 1) AS distinct_purchases
