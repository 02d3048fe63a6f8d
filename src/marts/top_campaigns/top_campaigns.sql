-- Top campaigns (rule 6): the 10 campaigns with the largest confirmed revenue.
-- billingCost is a double in the projection; it goes back to exact micro-units before
-- summing, so the sum is exact whatever the partitioning, and is rounded to cents once.
SELECT
    campaignId,
    CAST(SUM(CAST(billingCost AS DECIMAL(38, 6))) AS DECIMAL(38, 2)) AS revenue
FROM projection
WHERE isConfirmed AND campaignId IS NOT NULL
GROUP BY campaignId
ORDER BY revenue DESC, campaignId ASC
LIMIT 10
