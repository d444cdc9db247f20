"""Many runs: the paper's experiments, the suite's plan, executors, learning-curve sweeps."""
