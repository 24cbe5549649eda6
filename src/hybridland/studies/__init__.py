"""Study-specific pipelines built from the layers below (FLUXNET16 cross-site)."""
