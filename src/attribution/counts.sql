-- What the attribution used and left out, by reason (rule 8): one pass over each table (the
-- intermediates may be Parquet files, which a subquery per count would read again).
SELECT * FROM (
    SELECT
        COUNT(*) FILTER (WHERE status = 'duplicate_event') AS duplicate_events,
        COUNT(*) FILTER (WHERE status = 'duplicate_event' AND eventType = 'purchase')
            AS duplicate_purchase_type_rows,
        COUNT(*) FILTER (WHERE status <> 'duplicate_event') AS purchase_events,
        COUNT(*) FILTER (WHERE status = 'outside_session') AS purchase_events_outside_session,
        COUNT(*) FILTER (WHERE status = 'superseded') AS purchase_events_superseded,
        COUNT(*) FILTER (WHERE status = 'without_purchase') AS purchase_events_without_purchase,
        COUNT(*) FILTER (WHERE status = 'attributed') AS attributed_purchases
    FROM purchase_events_classified
) CROSS JOIN (
    SELECT
        COUNT(*) FILTER (WHERE copy > 1) AS duplicate_purchases,
        COUNT(*) FILTER (WHERE copy = 1) AS distinct_purchases
    FROM purchases_ranked
)
