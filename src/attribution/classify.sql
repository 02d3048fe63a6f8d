-- Gives every row of `purchase_events` (from sessionize.sql) its final outcome.
--   superseded          an earlier in-session event carries the same purchase_id (rule 5)
--   without_purchase    the attributing event's purchase_id has no purchases row
--   attributed          the event attributes its purchase: a row of the projection
-- Other statuses pass through unchanged. Only the columns the counts and the projection read
-- are kept: the table is materialized (on disk under a memory cap).
-- pick: among the in-session events of one purchase_id, 1 for the earliest by (eventTime,
-- eventId), 2 for the others. Almost every purchase_id has one in-session event: its hash
-- (key_hash) is counted, and only the purchase_ids whose hash repeats are grouped to find their
-- earliest event (a hash collision costs a purchase_id that grouping, never a wrong pick). No
-- sort of all the rows, which under a memory cap spilled every one of them.
WITH repeated AS (
    SELECT key_hash(purchaseId) AS h
    FROM purchase_events
    WHERE status = 'in_session'
    GROUP BY key_hash(purchaseId)
    HAVING count(*) > 1
),
earliest AS (
    SELECT e.purchaseId, first_value(e.eventId ORDER BY e.eventTime, e.eventId) AS eventId
    FROM repeated r
    JOIN purchase_events e ON e.status = 'in_session' AND key_hash(e.purchaseId) = r.h
    GROUP BY e.purchaseId
),
candidates AS (
    SELECT c.*,
        CASE WHEN c.status = 'in_session' THEN
            CASE WHEN f.eventId IS NULL OR f.eventId = c.eventId THEN 1 ELSE 2 END
        END AS pick
    FROM earliest f
    RIGHT JOIN purchase_events c ON c.status = 'in_session' AND c.purchaseId = f.purchaseId
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
    c.eventTime,
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
