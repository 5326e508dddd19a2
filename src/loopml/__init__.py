"""loopml: the closed loop of production machine learning on tabular data."""
