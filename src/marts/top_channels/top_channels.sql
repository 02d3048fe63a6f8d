-- Top channels (rule 7): per campaign, the channel with the most distinct sessions;
-- ties go to the smallest channelId. One row per campaign, ordered by campaignId.
WITH sessions_per_channel AS (
    SELECT campaignId, channelId, COUNT(DISTINCT sessionId) AS uniqueSessions
    FROM projection
    WHERE campaignId IS NOT NULL AND channelId IS NOT NULL
    GROUP BY campaignId, channelId
),
ranked AS (
    SELECT *,
        ROW_NUMBER() OVER (
            PARTITION BY campaignId ORDER BY uniqueSessions DESC, channelId ASC
        ) AS place
    FROM sessions_per_channel
)
SELECT campaignId, channelId, uniqueSessions
FROM ranked
WHERE place = 1
ORDER BY campaignId
