-- Ranks the rows of each purchaseId (rule 4): copy = 1 for the row kept, the greatest by
-- (purchaseTime, isConfirmed, billingCost), full ties going to the first in file order;
-- copy = 2 for the others. As in dedup.sql: sorted by purchaseId and then by that order, a row
-- is a duplicate when the row before it has the same purchaseId, and the window is partitioned
-- by a hash bucket of the key rather than by the key.
SELECT
    purchaseId, purchaseTime, billingCost, isConfirmed,
    CASE WHEN purchaseId = LAG(purchaseId) OVER (
        PARTITION BY hash_bucket(purchaseId)
        ORDER BY purchaseId, purchaseTime DESC, isConfirmed DESC, billingCost DESC, sourceRow
    ) THEN 2 ELSE 1 END AS copy
FROM purchases
