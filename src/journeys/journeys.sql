-- Journey attribution (docs/journeys.md): every user's sessions, each with the conversions it
-- is the session of; `journeys::transform` sorts them by user and in session order
-- (`USER_ORDER`: userId, t, sessionId, ct, purchaseId) and sums the users' journeys as they
-- stream past. Runs where the attribution's tables are: after
-- `attribution::transform_keeping_sessions`, on `sessions` (made by the session step in its
-- pass over the clickstream) and `purchase_events_classified`.
--
-- Touchpoints are sessions: every kept app_open starts one (rule 2), in rule 1's order (the
-- tie rank of two app_opens is the same, so eventTime, then eventId). Conversions are the
-- attributed purchases (rule 5) that are confirmed; T is the eventTime of the purchase event
-- that attributes them.
WITH conversions AS (
    SELECT sessionId, purchaseId, eventTime AS ct, purchaseTime AS pt, billingCost AS v
    FROM purchase_events_classified
    WHERE status = 'attributed' AND isConfirmed
)
SELECT s.userId, s.sessionId, s.t, s.campaignId, s.channelId, c.purchaseId, c.ct, c.pt, c.v
FROM sessions s
LEFT JOIN conversions c ON c.sessionId = s.sessionId
