"""Past one machine on engines people already run: the rule-filter pair pipeline on datatrove (readers, filters,
global MinHash dedup, local / Slurm / Ray executors, resume by completed task) and index encoding on Ray Data
(one E5 actor per GPU or CPU worker). Both need the `scale` extra (`pip install 'e5kit[scale]'`); nothing here is
imported unless one of those paths is asked for."""
