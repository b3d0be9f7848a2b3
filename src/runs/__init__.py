"""What a run leaves and how it stays whole: atomic files, the lock, preemption, metrics, tags, HPARAMS, pictures."""
