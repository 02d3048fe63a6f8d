-- Ranks the rows of each purchaseId (rule 4): copy = 1 is the greatest by
-- (purchaseTime, isConfirmed, billingCost); full ties go to the first in file order.
SELECT
    purchaseId, purchaseTime, billingCost, isConfirmed,
    ROW_NUMBER() OVER (
        PARTITION BY purchaseId
        ORDER BY purchaseTime DESC, isConfirmed DESC, billingCost DESC, sourceRow
    ) AS copy
FROM purchases
