"""The agent core: loop, events, budgets, compaction and trajectory recording."""
