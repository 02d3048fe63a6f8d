-- Engine `sql`: sessionizes the clickstream with window functions and keeps what the
-- attribution needs: every purchase event, with the session it falls in, and every duplicate
-- row (to account for it).
--
-- Input: view `relevant_events` (dedup.sql). Output: one row per duplicate clickstream row
-- and per distinct purchase event, with `status`:
--   duplicate_event   another row with the same eventId was kept (rule 4)
--   outside_session   a purchase event that no session contains (rule 2)
--   in_session        a purchase event inside the session `sessionId` (rules 2, 3)
--   session           a session's app_open (sessionId: itself), for the journey models only
-- `attribution::session_step` fills in {user} and {opens}: for the journey models, the column
-- userId and the sessions' rows; else nothing (no step after this one reads them, and every
-- column here goes through two intermediate tables, on disk under a memory cap).
--
-- Rule 1 (order): eventTime, then tieRank (app_open 0, others 1, app_close 2), then eventId;
-- `copy` sorts a kept row before its duplicates. Duplicates never open or close a session.
--
-- Both windows share one partitioning and order, so the engine sorts once. Each keeps a
-- running maximum of a struct whose leading fields are the order key: the greatest is the
-- latest. A row is in a session when the latest app_open at or before it comes after the
-- latest app_close strictly before it (rule 2). No LAST_VALUE ... IGNORE NULLS: Ballista loses
-- IGNORE NULLS when it ships plans to executors.
--
-- The windows are partitioned by a hash bucket of userId, with userId leading the order and
-- the structs (as in dedup.sql: state for a few thousand buckets, not one per user). A running
-- maximum can then come from an earlier user of the bucket; such a value has another `u` and
-- counts as none.
WITH marked AS (
    SELECT *,
        MAX(CASE WHEN copy = 1 AND eventType = 'app_open' THEN
                named_struct('u', userId, 't', eventTime, 'r', tieRank, 'id', eventId,
                             'campaignId', campaignId, 'channelId', channelId)
            END) OVER (
            PARTITION BY hash_bucket(userId)
            ORDER BY userId, eventTime, tieRank, eventId, copy
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS latestOpen,
        MAX(CASE WHEN copy = 1 AND eventType = 'app_close' THEN
                named_struct('u', userId, 't', eventTime, 'r', tieRank, 'id', eventId)
            END) OVER (
            PARTITION BY hash_bucket(userId)
            ORDER BY userId, eventTime, tieRank, eventId, copy
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS latestCloseBefore
    FROM relevant_events
),
own AS (
    SELECT *,
        CASE WHEN latestOpen['u'] = userId THEN latestOpen END AS lastOpen,
        CASE WHEN latestCloseBefore['u'] = userId THEN latestCloseBefore END AS lastCloseBefore
    FROM marked
    WHERE copy > 1 OR eventType = 'purchase' {opens}
),
judged AS (
    SELECT *,
        copy = 1 AND lastOpen IS NOT NULL AND (
            lastCloseBefore IS NULL
            OR lastCloseBefore['t'] < lastOpen['t']
            OR (lastCloseBefore['t'] = lastOpen['t'] AND lastCloseBefore['r'] < lastOpen['r'])
            OR (lastCloseBefore['t'] = lastOpen['t'] AND lastCloseBefore['r'] = lastOpen['r']
                AND lastCloseBefore['id'] < lastOpen['id'])
        ) AS inSession
    FROM own
)
SELECT {user}
    eventId,
    eventType,
    eventTime,
    purchaseId,
    CASE
        WHEN copy > 1 THEN 'duplicate_event'
        WHEN eventType = 'app_open' THEN 'session'
        WHEN inSession THEN 'in_session'
        ELSE 'outside_session'
    END AS status,
    CASE WHEN inSession THEN lastOpen['id'] END AS sessionId,
    CASE WHEN inSession THEN lastOpen['campaignId'] END AS campaignId,
    -- A duplicate keeps its own channelId: the duplicate app_opens per channel are taken
    -- from the decoded ones to count the sessions per channel (attribution/mod.rs).
    CASE WHEN copy > 1 THEN channelId WHEN inSession THEN lastOpen['channelId'] END AS channelId
FROM judged
