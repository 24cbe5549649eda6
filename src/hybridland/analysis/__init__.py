"""The analyses of a trained ensemble: partitioning, identifiability, PCA, SHAP, scorecard."""
