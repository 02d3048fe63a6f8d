-- Engine `sql`: sessionizes the clickstream with window functions and keeps what the
-- attribution needs: every purchase event, with the session it falls in, and every duplicate
-- row (to account for it).
--
-- Input: view `relevant_events` (dedup.sql). Output: one row per duplicate clickstream row
-- and per distinct purchase event, with `status`:
--   duplicate_event   another row with the same eventId was kept (rule 4)
--   outside_session   a purchase event that no session contains (rule 2)
--   in_session        a purchase event inside the session `sessionId` (rules 2, 3)
--
-- Rule 1 (order): eventTime, then tieRank (app_open 0, others 1, app_close 2), then eventId.
-- Duplicates stay in the stream but never open or close a session, and `copy` sorts a kept
-- row before its duplicates, so the first row of every session group is its app_open.
WITH grouped AS (
    -- openSeq numbers the user's app_opens: every row belongs to the group of the last
    -- app_open at or before it (0 = before the first app_open).
    SELECT *,
        SUM(CASE WHEN copy = 1 AND eventType = 'app_open' THEN 1 ELSE 0 END) OVER (
            PARTITION BY userId
            ORDER BY eventTime, tieRank, eventId, copy
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS openSeq
    FROM relevant_events
),
sessioned AS (
    -- Within a group, the session runs from its app_open to the first app_close, inclusive:
    -- a row is in the session while no app_close came strictly before it.
    SELECT *,
        FIRST_VALUE(eventId) OVER (
            PARTITION BY userId, openSeq ORDER BY eventTime, tieRank, eventId, copy
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS groupOpenId,
        FIRST_VALUE(campaignId) OVER (
            PARTITION BY userId, openSeq ORDER BY eventTime, tieRank, eventId, copy
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS groupCampaignId,
        FIRST_VALUE(channelId) OVER (
            PARTITION BY userId, openSeq ORDER BY eventTime, tieRank, eventId, copy
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS groupChannelId,
        COALESCE(SUM(CASE WHEN copy = 1 AND eventType = 'app_close' THEN 1 ELSE 0 END) OVER (
            PARTITION BY userId, openSeq ORDER BY eventTime, tieRank, eventId, copy
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS closesBefore
    FROM grouped
)
SELECT
    eventId,
    userId,
    eventType,
    eventTime,
    purchaseId,
    CASE
        WHEN copy > 1 THEN 'duplicate_event'
        WHEN openSeq = 0 OR closesBefore > 0 THEN 'outside_session'
        ELSE 'in_session'
    END AS status,
    CASE WHEN copy = 1 AND openSeq > 0 AND closesBefore = 0 THEN groupOpenId END AS sessionId,
    CASE WHEN copy = 1 AND openSeq > 0 AND closesBefore = 0 THEN groupCampaignId END AS campaignId,
    CASE WHEN copy = 1 AND openSeq > 0 AND closesBefore = 0 THEN groupChannelId END AS channelId
FROM sessioned
WHERE copy > 1 OR eventType = 'purchase'
