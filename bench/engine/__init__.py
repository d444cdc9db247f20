"""Training one run: typed settings, profiles, the paper's experiments, the split, the protocol's
stages, the engines, the run folder, external sets and sites."""
