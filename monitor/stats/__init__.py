"""Pure statistics of closed windows: drift, data quality, default decisions, change detectors.

No I/O and no imports from other monitor packages (but `monitor.errors`): the windows layer
hands in counts, histograms and bounded samples; the rules layer reads the returned rows.

- `drift`: PSI, Jensen-Shannon distance, normalised Wasserstein, KS, chi-square, PSI's null
  quantile;
- `quality`: missing, type-error, out-of-range, unseen-category and volume rates;
- `decision`: the default verdicts (effect AND support, BH across features) and
  `evaluate_window`, the one call a closed window needs;
- `registry`: metric name → function, feature types and default threshold;
- `detectors`: river ADWIN + Page-Hinkley on the score stream, snapshot/restore for checkpoints;
- `names`: the metric names rows carry (light: no numpy or scipy).

Nothing is re-exported here, so importing one module does not load them all.
"""
