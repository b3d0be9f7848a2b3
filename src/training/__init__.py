"""Training: the model, the step, the loop, schedules, precision, scoring, checkpoints, and the job that ties them."""
