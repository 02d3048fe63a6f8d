-- Journey attribution (README "Journey attribution"): every user's sessions and conversions
-- through the `journeys` function (udf.rs), and its records summed into one small table the
-- program assembles the outputs from (mod.rs). Runs where the attribution's tables are: after
-- `attribution::transform_with`, on `relevant_events` (rule 4 applied) and
-- `purchase_events_classified`.
--
-- Touchpoints are sessions: every kept app_open starts one (rule 2), in rule 1's order.
-- Conversions are the attributed purchases (rule 5) that are confirmed; T is the eventTime of
-- the purchase event that attributes them.
--
-- Shares are summed as decimals with 18 places: exact sums, so the result is the same
-- whatever the partitioning and thread count (a float sum depends on its order).
WITH sessions AS (
    SELECT userId, eventId AS sessionId, eventTime AS t, campaignId, channelId
    FROM relevant_events
    WHERE copy = 1 AND eventType = 'app_open'
),
conversions AS (
    SELECT sessionId, purchaseId, eventTime AS t, billingCost AS v
    FROM purchase_events_classified
    WHERE status = 'attributed' AND isConfirmed
),
user_sessions AS (
    SELECT userId,
        array_agg(named_struct('t', t, 'campaign', campaignId, 'channel', channelId, 'id', sessionId)
                  ORDER BY t, sessionId) AS sessions
    FROM sessions
    GROUP BY userId
),
user_conversions AS (
    SELECT s.userId,
        array_agg(named_struct('session', c.sessionId, 't', c.t, 'v', c.v)
                  ORDER BY c.t, c.purchaseId) AS conversions
    FROM conversions c
    JOIN sessions s ON s.sessionId = c.sessionId
    GROUP BY s.userId
),
records AS (
    SELECT unnest(journeys(s.sessions, c.conversions, '${models}', CAST(${lookback} AS BIGINT),
                           CAST(${steps} AS BIGINT), '${transform}', CAST(${half_life} AS DOUBLE))) AS r
    FROM user_sessions s
    LEFT JOIN user_conversions c ON c.userId = s.userId
)
SELECT
    r['kind'] AS kind,
    r['dimension'] AS dimension,
    r['model'] AS model,
    r['key'] AS key,
    r['to'] AS "to",
    SUM(CAST(r['share'] AS DECIMAL(38, 18))) AS conversions,
    SUM(CAST(r['revenue'] AS DECIMAL(38, 18))) AS revenue,
    SUM(r['value']) AS value,
    SUM(r['converted']) AS converted,
    SUM(r['non']) AS non,
    COUNT(*) AS n
FROM records
GROUP BY r['kind'], r['dimension'], r['model'], r['key'], r['to']
