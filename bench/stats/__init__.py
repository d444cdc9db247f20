"""Pure statistics of predictions: metrics, intervals, clustered and contrast statistics, calibration,
localisation measures. Imports nothing of the project but `bench.core`."""
