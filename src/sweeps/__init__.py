"""Sweeps: the packed launcher, its per-job logs, the callbacks, the report and its picture."""
