"""Frames in and out: reading CSVs (`csv`), finding the columns (`columns`) and dates (`dates`),
the panel of series (`frames`, `layout`), the time grid (`timegrid`) and writing (`writing`)."""
