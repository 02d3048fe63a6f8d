-- Gives every row of `purchase_events` (from sessionize.sql) its final outcome.
--   superseded          an earlier in-session event carries the same purchase_id (rule 5)
--   without_purchase    the attributing event's purchase_id has no purchases row
--   attributed          the event attributes its purchase: a row of the projection
-- Other statuses pass through unchanged. Only the columns the counts and the projection read
-- are kept: the table is materialized (on disk under a memory cap).
-- pick: among the in-session events of one purchase_id, 1 for the earliest by (eventTime,
-- eventId), 2 for the others (a hash-bucketed window, as in dedup.sql).
WITH candidates AS (
    SELECT *,
        CASE WHEN status = 'in_session' THEN
            CASE WHEN purchaseId = LAG(purchaseId) OVER (
                PARTITION BY hash_bucket(purchaseId), status = 'in_session'
                ORDER BY purchaseId, eventTime, eventId
            ) THEN 2 ELSE 1 END
        END AS pick
    FROM purchase_events
),
kept_purchases AS (
    SELECT * FROM purchases_ranked WHERE copy = 1
)
SELECT
    CASE
        WHEN c.status <> 'in_session' THEN c.status
        WHEN c.pick > 1 THEN 'superseded'
        WHEN p.purchaseId IS NULL THEN 'without_purchase'
        ELSE 'attributed'
    END AS status,
    c.eventType,
    p.purchaseId,
    p.purchaseTime,
    p.billingCost,
    p.isConfirmed,
    c.sessionId,
    c.campaignId,
    c.channelId
-- The purchases are the join's build side (the left one, which a hash join holds in memory and
-- cannot spill): they are fewer and narrower than the candidates, and the intermediate tables
-- under a memory cap carry no statistics for the planner to choose by (on 50M events under a
-- 1.5 GiB cap, building on the candidates ran out of memory).
FROM kept_purchases p
RIGHT JOIN candidates c
    ON c.status = 'in_session' AND c.pick = 1 AND c.purchaseId = p.purchaseId
