-- The conversions of a stored projection (`marketing-analytics models`), in the shape
-- journeys.sql reads from `purchase_events_classified`: its purchases, each with T, the
-- eventTime of the purchase event that attributes it. Rule 5 attributes a purchase to its
-- earliest in-session event; that event is in the projection's session, and every other
-- in-session event of that purchaseId there comes at or after it, so T is their earliest time.
-- A purchase whose session the clickstream does not have keeps eventTime null (the job
-- refuses the projection then: it was not computed from this clickstream).
WITH events AS (
    SELECT purchaseId, sessionId, MIN(eventTime) AS eventTime
    FROM purchase_events
    WHERE status = 'in_session'
    GROUP BY purchaseId, sessionId
)
SELECT
    p.sessionId,
    p.purchaseId,
    e.eventTime,
    p.purchaseTime,
    CAST(p.billingCost AS DECIMAL(18, 6)) AS billingCost,
    p.isConfirmed,
    'attributed' AS status
FROM projection p
LEFT JOIN events e ON e.purchaseId = p.purchaseId AND e.sessionId = p.sessionId
