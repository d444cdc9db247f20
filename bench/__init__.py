"""fus2bench: a reproducible benchmark of Fus2Net (Ma et al., 2021) and CNN baselines."""

__version__ = "0.1.0"
