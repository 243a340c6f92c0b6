"""The offline demo and the results study: synthetic corpus, pipeline stages and reports.

Kept apart from the training-data modules: nothing under `data/`, `model/`, `loss/`, `trainer/`
or `evaluation/` depends on it. `recipes/demo.py` and `recipes/results.py` put these pieces in order.
"""
