"""What only the benchmark needs: the two loops it times and the check that a step matches eager steps."""
