"""Training one run: typed settings, profiles, the protocol's stages, the engines, the run folder."""
