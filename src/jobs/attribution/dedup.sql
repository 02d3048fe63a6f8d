-- Shared by every engine: rule 4 for events, and the cut to the rows sessions need.
--
-- Input: table `events`. Output (view `relevant_events`): every app_open, app_close and
-- purchase event, plus every duplicate row (copy > 1) of any type so it is accounted for.
-- Rule 4: of the rows with one eventId keep the least (eventTime, tieRank, attributes); full
-- ties go to the first in file order (sourceRow).
WITH ranked AS (
    SELECT
        userId, eventId, eventType, eventTime, campaignId, channelId, purchaseId,
        CASE eventType WHEN 'app_open' THEN 0 WHEN 'app_close' THEN 2 ELSE 1 END AS tieRank,
        ROW_NUMBER() OVER (
            PARTITION BY eventId
            ORDER BY eventTime,
                     CASE eventType WHEN 'app_open' THEN 0 WHEN 'app_close' THEN 2 ELSE 1 END,
                     attributes, sourceRow
        ) AS copy
    FROM events
)
SELECT * FROM ranked
WHERE copy > 1 OR eventType IN ('app_open', 'app_close', 'purchase')
