-- Shared by every engine: rule 4 for events, and the cut to the rows sessions need.
--
-- Input: table `events`. Output (view `relevant_events`): every app_open, app_close and
-- purchase event, plus every duplicate row of any type so it is accounted for, with `copy`:
-- 1 for the row kept, 2 for a duplicate.
-- userBucket is a grouping helper that depends on userId only: 0 here; the hashing twin
-- (dedup/) gives the userId's part, ascending in each output partition.
-- Rule 4: of the rows with one eventId keep the least (eventTime, tieRank, attributes); full
-- ties go to the first in file order (sourceRow). tie_rank is rule 1's rank, a function
-- registered from attribution/rules.rs, as the udaf and the hashing dedup use it.
--
-- Sorted by eventId and then by that order, a row is a duplicate when the row before it has
-- the same eventId. The window is partitioned by a hash bucket of eventId, not by eventId:
-- every row of an eventId is still in one partition, in the same order, but the window keeps
-- state for a few thousand buckets instead of one per event (ROW_NUMBER() OVER (PARTITION BY
-- eventId ...) took most of the job's time; docs/performance.md).
WITH ranked AS (
    SELECT
        userId, eventId, eventType, eventTime, campaignId, channelId, purchaseId,
        tie_rank(eventType) AS tieRank,
        CAST(0 AS INT) AS userBucket,
        CASE WHEN eventId = LAG(eventId) OVER (
            PARTITION BY hash_bucket(eventId)
            ORDER BY eventId, eventTime,
                     tie_rank(eventType),
                     attributes, sourceRow
        ) THEN 2 ELSE 1 END AS copy
    FROM events
)
SELECT * FROM ranked
WHERE copy > 1 OR eventType IN ('app_open', 'app_close', 'purchase')
