"""The run level: one network (or a stack of networks) trained through a sequence of tasks.

data/ (sources, streams) · models · methods/ · fisher · step · train · gating · plasticity ·
metrics · verdict · result · outputs · checkpoint. Nothing here knows about studies.
"""
