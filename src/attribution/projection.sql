-- The purchases attribution projection (rule 5), sorted by purchaseId for deterministic output.
SELECT
    purchaseId,
    purchaseTime,
    CAST(billingCost AS DOUBLE) AS billingCost,
    isConfirmed,
    sessionId,
    campaignId,
    channelId
FROM purchase_events_classified
WHERE status = 'attributed'
ORDER BY purchaseId
