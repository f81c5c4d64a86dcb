"""Observation robustness that needs more than one learner.

Learned adversaries (SA-RL, PA-AD, robust Sarsa), the pinned strongest-attack suite, and alternating
training (ATLA, PA-ATLA, PROTECTED).
"""
