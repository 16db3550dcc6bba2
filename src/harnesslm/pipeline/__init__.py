"""The recipe as steps over a run directory: prepare, teacher, index, align, refine, evaluate, bench."""
