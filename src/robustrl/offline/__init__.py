"""Offline RL: Minari datasets, data corruption, and learners (BC, IQL, RIQL, CQL, TD3+BC)."""
