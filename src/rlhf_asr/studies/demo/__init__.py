"""`rlhf-asr demo`: the product's main job end to end, offline, on real weights (`run.py`), and its report."""
