"""seqlab: Hydra-configured experiments with recurrent sequence classifiers."""
