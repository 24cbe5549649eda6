"""The data pipeline: grids, sources and downloads, regridding, the twin, and the driver."""
