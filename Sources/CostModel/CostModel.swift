// CostModel — implementation lands with its issue; this file keeps the target buildable.
