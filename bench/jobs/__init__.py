"""Many runs: the suite's plan, executors, learning-curve sweeps."""
