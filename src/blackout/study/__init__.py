"""The study level: many runs swept over a grid, stored, analysed, plotted and reported.

spec (grids) · pools (local and Ray) · store (SQLite) · results (ResultSet) · tobit · capacity ·
compare · predict · plots · report. It reads runs only through ``Result``.
"""
