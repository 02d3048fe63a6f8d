-- Weekly purchases projection: per ISO week (Monday to Sunday) and campaign, the purchases,
-- the confirmed purchases, the confirmed revenue (exact, rounded to cents once) and the
-- distinct sessions. Input: table `projection` (already limited to the period).
SELECT
    CONCAT(
        CAST(date_part('year', date_trunc('week', purchaseTime) + INTERVAL '3 days') AS BIGINT),
        '-W',
        lpad(CAST(CAST(date_part('week', purchaseTime) AS BIGINT) AS VARCHAR), 2, '0')
    ) AS isoWeek,
    CAST(date_trunc('week', purchaseTime) AS DATE) AS weekStart,
    campaignId,
    COUNT(*) AS purchases,
    COUNT(*) FILTER (WHERE isConfirmed) AS confirmedPurchases,
    CAST(COALESCE(SUM(CASE WHEN isConfirmed THEN CAST(billingCost AS DECIMAL(38, 6)) END), 0) AS DECIMAL(38, 2))
        AS confirmedRevenue,
    COUNT(DISTINCT sessionId) AS uniqueSessions
FROM projection
GROUP BY 1, 2, 3
ORDER BY weekStart, campaignId NULLS LAST
