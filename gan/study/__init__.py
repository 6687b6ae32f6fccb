"""Ablation studies, run by `python -m gan.ablate` (whose help describes the study file).

Data flows one way: `plan` reads a study file (its optional sections in `sections`, an arm that
takes another study's winner in `winners`) and plans its runs (`model` holds both as data);
`tuning` tunes each configuration with Optuna first when the study says so, and `summary` reads
what it keeps of that (records/tuning.json); `runner` trains the runs (each forked from a `warm`
server), each leaving its state (`status`) in its directory and, once finished, its record
(`records`) in the study's folder; `report` reads the records and the unfinished runs'
directories (`rows`) and writes the results, with `analysis` and `stats` (the declared
comparisons), `plots` and `hparams`. `launchers` hands the runs to other schedulers.
"""
