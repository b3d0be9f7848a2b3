"""Sweeps: the packed launcher, the study sweeper (its search space, study and trials), per-job logs, the
callbacks, the report and its picture."""
