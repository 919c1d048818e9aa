import os

# Tests run on the small CI machine: keep them deterministic and quiet.
os.environ.setdefault("FERROFLOW_POOL_MB", "256")
