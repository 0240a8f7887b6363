"""Constants that MaskGRU (torch, mask_gru.py) and its numpy path (mask_gru_numpy.py) share,
kept apart from both so that the numpy path needs no torch."""

EPS = 1e-8
SALIENCE_FLOOR = 0.1  # phase features: a bin's weight is |z| / (|z| + this * mean |z| over the bins)
LOCAL_FEATURES = 5  # per band and frame for the refiner: energy, coherence, balance, phase cos, sin
