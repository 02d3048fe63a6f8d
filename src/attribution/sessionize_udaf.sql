-- Engine `udaf`: the session rules run inside the `sessionize` aggregate (udaf.rs), one group
-- per user. Output: the same rows and columns as sessionize.sql (its {user} and {sessionize}
-- are filled in the same way: see `attribution::session_step`). Grouping by userBucket too
-- (a function of userId, ascending in each partition) lets the aggregation emit each bucket's
-- users as soon as the next bucket starts instead of holding every user to the end.
WITH per_user AS (
    SELECT {user}
        {sessionize}(eventTime, eventId, eventType, campaignId, channelId, purchaseId, copy > 1) AS items
    FROM relevant_events
    GROUP BY userBucket, userId
),
flat AS (
    SELECT {user} unnest(items) AS item FROM per_user
)
SELECT {user}
    item['eventId'] AS eventId,
    item['eventType'] AS eventType,
    item['eventTime'] AS eventTime,
    item['purchaseId'] AS purchaseId,
    item['status'] AS status,
    item['sessionId'] AS sessionId,
    item['campaignId'] AS campaignId,
    item['channelId'] AS channelId
FROM flat
