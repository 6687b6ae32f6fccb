"""Ablation studies, run by `python -m gan.ablate` (whose help describes the study file).

Data flows one way: `plan` reads a study file and plans its runs; `runner` trains them, each
leaving its record (`status`) in its directory; `report` reads the records and the runs' events
and writes the results, with `plots`, `hparams` and `stats`. `launchers` hands the runs to other
schedulers.
"""
