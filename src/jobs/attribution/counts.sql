-- What the attribution used and left out, by reason (rule 8). One pass over each table:
-- the intermediates may be Parquet files, and each subquery would read them again.
SELECT * FROM (
    SELECT
        COALESCE(SUM(CASE WHEN status = 'duplicate_event' THEN 1 ELSE 0 END), 0) AS duplicate_events,
        COALESCE(SUM(CASE WHEN status = 'duplicate_event' AND eventType = 'purchase' THEN 1 ELSE 0 END), 0)
            AS duplicate_purchase_type_rows,
        COALESCE(SUM(CASE WHEN status <> 'duplicate_event' THEN 1 ELSE 0 END), 0) AS purchase_events,
        COALESCE(SUM(CASE WHEN status = 'outside_session' THEN 1 ELSE 0 END), 0) AS purchase_events_outside_session,
        COALESCE(SUM(CASE WHEN status = 'superseded' THEN 1 ELSE 0 END), 0) AS purchase_events_superseded,
        COALESCE(SUM(CASE WHEN status = 'without_purchase' THEN 1 ELSE 0 END), 0) AS purchase_events_without_purchase,
        COALESCE(SUM(CASE WHEN status = 'attributed' THEN 1 ELSE 0 END), 0) AS attributed_purchases
    FROM purchase_events_classified
) CROSS JOIN (
    SELECT
        COALESCE(SUM(CASE WHEN copy > 1 THEN 1 ELSE 0 END), 0) AS duplicate_purchases,
        COALESCE(SUM(CASE WHEN copy = 1 THEN 1 ELSE 0 END), 0) AS distinct_purchases
    FROM purchases_ranked
)
