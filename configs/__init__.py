"""Example configs, shipped as package data (read with importlib.resources, e.g. by `maskstream demo`)."""
