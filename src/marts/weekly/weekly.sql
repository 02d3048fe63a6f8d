-- Weekly purchases projection: per ISO week (Monday to Sunday) and campaign, the purchases,
-- the confirmed purchases, the confirmed revenue (exact, rounded to cents once) and the
-- distinct sessions. Input: table `projection` (already limited to the period). The project's
-- iso_week and iso_week_start (jobs/weekly/iso_week.rs) work for every year, where
-- date_trunc('week', …) works in nanoseconds and ends in 2262.
SELECT
    iso_week(purchaseTime) AS isoWeek,
    iso_week_start(purchaseTime) AS weekStart,
    campaignId,
    COUNT(*) AS purchases,
    COUNT(*) FILTER (WHERE isConfirmed) AS confirmedPurchases,
    CAST(COALESCE(SUM(CASE WHEN isConfirmed THEN CAST(billingCost AS DECIMAL(38, 6)) END), 0) AS DECIMAL(38, 2))
        AS confirmedRevenue,
    COUNT(DISTINCT sessionId) AS uniqueSessions
FROM projection
GROUP BY 1, 2, 3
ORDER BY weekStart, campaignId NULLS LAST
