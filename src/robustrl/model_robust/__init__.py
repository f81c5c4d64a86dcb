"""Robustness to model error: training against uncertainty sets (RARL, QARL, IWOCS, M2TD3)."""
